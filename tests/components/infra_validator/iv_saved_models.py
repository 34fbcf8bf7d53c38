"""Tiny SavedModels for the InfraValidator and push tests: one good, three broken ways.

- good: `serving_default` takes `x` float32 [None, 4] and returns `y` = x @ w + b (variables,
  so a variables file exists), plus `classify` (tensorflow/serving/classify) over serialized
  tf.Examples with float feature `x` (4 values).
- fails_at_inference: loads fine, but its graph asserts sum(|x|) < -1, which no input satisfies.
- no_signatures: a module with a variable and no signature at all.
- truncated_variables: the good model with its variables data file cut short.
- tf1_without_variables: a TF1 SavedModelBuilder export of `y` = 0.5 * sum(x) + 2 (input `x`
  float32 [None, 4]) whose graph has no variables, so `variables/` is left empty (TF Serving
  serves such models; they must be blessed and pushed).
"""

from __future__ import annotations

from pathlib import Path

CLASSIFY = "tensorflow/serving/classify"
FEATURES = 4


def _set_method(export_dir: Path, signature: str, method: str) -> None:
    from tensorflow.core.protobuf import saved_model_pb2

    path = export_dir / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        meta_graph.signature_def[signature].method_name = method
    path.write_bytes(saved_model.SerializeToString())


def build_good(export_dir: str | Path) -> Path:
    import tensorflow as tf

    class Linear(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.reshape(tf.range(FEATURES * 2, dtype=tf.float32), [FEATURES, 2]) / 10.0)
            self.b = tf.Variable([0.5, -0.5])

        @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
        def predict(self, x):
            return {"y": tf.matmul(x, self.w) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            x = tf.io.parse_example(inputs, {"x": tf.io.FixedLenFeature([FEATURES], tf.float32)})["x"]
            scores = tf.nn.softmax(tf.matmul(x, self.w) + self.b)
            classes = tf.tile(tf.constant([["a", "b"]]), [tf.shape(x)[0], 1])
            return {"classes": classes, "scores": scores}

    module = Linear()
    export_dir = Path(export_dir)
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.predict, "classify": module.classify})
    _set_method(export_dir, "classify", CLASSIFY)
    return export_dir


def build_fails_at_inference(export_dir: str | Path) -> Path:
    import tensorflow as tf

    class Broken(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.ones([FEATURES, 2]))

        @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
        def predict(self, x):
            check = tf.debugging.assert_less(
                tf.reduce_sum(tf.abs(x)), -1.0, message="intentional inference failure"
            )
            with tf.control_dependencies([check]):
                return {"y": tf.matmul(x, self.w)}

    module = Broken()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.predict})
    return Path(export_dir)


def build_no_signatures(export_dir: str | Path) -> Path:
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(tf.ones([FEATURES]))
    tf.saved_model.save(module, str(export_dir))
    return Path(export_dir)


def build_truncated_variables(export_dir: str | Path) -> Path:
    export_dir = build_good(export_dir)
    data_files = sorted((export_dir / "variables").glob("variables.data-*"))
    for data in data_files:
        content = data.read_bytes()
        data.write_bytes(content[: len(content) // 3])
    return export_dir


def build_tf1_without_variables(export_dir: str | Path) -> Path:
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as session:
        x = tf1.placeholder(tf.float32, [None, FEATURES], name="x")
        y = tf.reduce_sum(x, axis=1) * 0.5 + 2.0
        builder = tf1.saved_model.builder.SavedModelBuilder(str(export_dir))
        signature = tf1.saved_model.signature_def_utils.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
        builder.save()
    return Path(export_dir)


BROKEN = {
    "fails_at_inference": build_fails_at_inference,
    "no_signatures": build_no_signatures,
    "truncated_variables": build_truncated_variables,
}
