"""export_serving_model: the serving contract around small Keras models, through real SavedModel round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.utils import io_utils

from components.trainer import features, signatures


def _schema(tmp_path: Path, columns: dict[str, int], image_length: int | None = None) -> str:
    schema = schema_pb2.Schema()
    for name, kind in columns.items():
        schema.feature.add(name=name, type=kind)
    if image_length is not None:
        feature = schema.feature.add(name=features.IMAGE_KEY, type=schema_pb2.INT)
        feature.shape.dim.add(size=image_length)
    path = str(tmp_path / "schema.pbtxt")
    io_utils.write_pbtxt_file(path, schema)
    return path


def _fn_args(tmp_path: Path, schema_path: str, **config) -> FnArgs:
    return FnArgs(
        serving_model_dir=str(tmp_path / "export"), schema_path=str(schema_path),
        train_files=[str(tmp_path / "examples" / "Split-train" / "*")], custom_config=config or None,
    )


def _signature_defs(export_dir: str):
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    return saved.meta_graphs[0].signature_def


def _image_example(pixels: np.ndarray) -> bytes:
    feature = {features.IMAGE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=pixels.reshape(-1).astype(int).tolist()))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _tabular_example(values: dict) -> bytes:
    feature = {}
    for name, value in values.items():
        if isinstance(value, str):
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        elif isinstance(value, int):
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        elif value is None:  # what CsvExampleGen writes for an empty cell
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_image_cnn_with_in_graph_preprocessing_gets_all_three_signatures(tmp_path: Path) -> None:
    """The seed 001 way: the model expects pixels / 255; the shape comes from the schema (8*8*3)."""
    model = keras.Sequential([
        keras.layers.Conv2D(4, 3, activation="relu", input_shape=(8, 8, 3)),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    names = ["airplane", "bird", "cat"]
    export = signatures.export_serving_model(
        model, _fn_args(tmp_path, _schema(tmp_path, {"label": schema_pb2.INT}, image_length=8 * 8 * 3)),
        class_names=names, preprocess=lambda pixels: pixels / 255.0,
    )
    assert export == str(tmp_path / "export")
    defs = _signature_defs(export)
    assert set(defs) >= {signatures.SERVING_DEFAULT, signatures.EXAMPLES_SIGNATURE, signatures.IMAGE_BYTES_SIGNATURE}
    assert defs[signatures.EXAMPLES_SIGNATURE].method_name == signatures.CLASSIFY_METHOD_NAME
    assert [d.size for d in defs[signatures.SERVING_DEFAULT].inputs["image"].tensor_shape.dim] == [-1, 8, 8, 3]
    assert (Path(export) / "assets" / features.CLASS_NAMES_FILE).read_text() == "airplane\nbird\ncat\n"

    pixels = np.random.default_rng(0).integers(0, 256, size=(4, 8, 8, 3)).astype(np.float32)
    want = model(pixels / 255.0).numpy()
    loaded = tf.saved_model.load(export)
    served = loaded.signatures[signatures.SERVING_DEFAULT](image=tf.constant(pixels))
    np.testing.assert_allclose(served["probabilities"].numpy(), want, rtol=1e-5, atol=1e-6)
    assert served["class_name"].numpy().tolist() == [names[i].encode() for i in want.argmax(axis=1)]
    classified = loaded.signatures[signatures.EXAMPLES_SIGNATURE](inputs=tf.constant([_image_example(p) for p in pixels]))
    np.testing.assert_allclose(classified["scores"].numpy(), want, rtol=1e-5, atol=1e-6)
    assert classified["classes"].numpy()[0].tolist() == [n.encode() for n in names]


def test_flat_dense_net_with_logits_is_reshaped_and_softmaxed(tmp_path: Path) -> None:
    """The seed 003 way: a dense net on 784-style flat pixels returning logits; names "0".."K-1"."""
    model = keras.Sequential([keras.layers.Dense(5, input_shape=(16,))])  # no activation: logits
    assert signatures.output_kind(model) == signatures.OUTPUT_LOGITS
    export = signatures.export_serving_model(
        model, _fn_args(tmp_path, _schema(tmp_path, {"label": schema_pb2.INT}, image_length=16))
    )
    pixels = np.arange(2 * 16, dtype=np.float32).reshape(2, 4, 4, 1)
    served = tf.saved_model.load(export).signatures[signatures.SERVING_DEFAULT](image=tf.constant(pixels))
    want = tf.nn.softmax(model(pixels.reshape(2, 16))).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), want, rtol=1e-5, atol=1e-6)
    assert (Path(export) / "assets" / features.CLASS_NAMES_FILE).read_text().split() == ["0", "1", "2", "3", "4"]


def test_image_shape_and_class_names_come_from_custom_config_and_examples(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / features.CLASS_NAMES_FILE).write_text("day\nnight\n")
    model = keras.Sequential([keras.layers.Flatten(input_shape=(2, 8, 1)), keras.layers.Dense(2, activation="softmax")])
    schema = _schema(tmp_path, {"label": schema_pb2.INT}, image_length=16)
    export = signatures.export_serving_model(model, _fn_args(tmp_path, schema, image_shape=[2, 8, 1]))
    defs = _signature_defs(export)
    assert [d.size for d in defs[signatures.SERVING_DEFAULT].inputs["image"].tensor_shape.dim] == [-1, 2, 8, 1]
    assert (Path(export) / "assets" / features.CLASS_NAMES_FILE).read_text() == "day\nnight\n"


def test_tabular_model_with_odd_column_names_strings_and_missing_values(tmp_path: Path) -> None:
    """A TFX-tutorial style model: one Keras input per column, concatenated, logits out."""
    columns = {"sepal length (cm)": schema_pb2.FLOAT, "2nd.width": schema_pb2.INT, "colour": schema_pb2.BYTES}
    schema = _schema(tmp_path, {**columns, "species": schema_pb2.BYTES})
    numbers = [keras.Input(shape=(1,), name=features.input_key(n)) for n in ("sepal length (cm)", "2nd.width")]
    colour = keras.Input(shape=(1,), name="colour", dtype=tf.string)
    one_hot = keras.layers.StringLookup(vocabulary=["red", "blue"], output_mode="one_hot")(colour)
    filled = [keras.layers.Lambda(lambda t: tf.where(tf.math.is_nan(t), -1.0, t))(x) for x in numbers]
    outputs = keras.layers.Dense(3)(keras.layers.Concatenate()([*filled, one_hot]))
    model = keras.Model([*numbers, colour], outputs)

    names = ["setosa", "versicolor", "virginica"]
    export = signatures.export_serving_model(model, _fn_args(tmp_path, schema, label_key="species"), class_names=names)
    defs = _signature_defs(export)
    assert set(defs[signatures.SERVING_DEFAULT].inputs) == {"sepal_length_cm", "f_2nd_width", "colour"}
    assert defs[signatures.SERVING_DEFAULT].inputs["colour"].dtype == tf.string.as_datatype_enum

    loaded = tf.saved_model.load(export)
    served = loaded.signatures[signatures.SERVING_DEFAULT](
        sepal_length_cm=tf.constant([5.1, 0.5]), f_2nd_width=tf.constant([3.0, 1.0]), colour=tf.constant(["red", "green"])
    )
    want = tf.nn.softmax(model({"sepal_length_cm": tf.constant([[5.1], [0.5]]), "f_2nd_width": tf.constant([[3.0], [1.0]]),
                                "colour": tf.constant([["red"], ["green"]])})).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), want, rtol=1e-5, atol=1e-6)

    rows = [{"sepal length (cm)": 5.1, "2nd.width": 3, "colour": "red"}, {"sepal length (cm)": None, "2nd.width": 1}]
    classified = loaded.signatures[signatures.EXAMPLES_SIGNATURE](inputs=tf.constant([_tabular_example(r) for r in rows]))
    missing = tf.nn.softmax(model({"sepal_length_cm": tf.constant([[-1.0]]), "f_2nd_width": tf.constant([[1.0]]),
                                   "colour": tf.constant([[""]])})).numpy()
    np.testing.assert_allclose(classified["scores"].numpy(), np.concatenate([want[:1], missing]), rtol=1e-5, atol=1e-6)
    assert classified["classes"].numpy()[1].tolist() == [n.encode() for n in names]


def test_single_input_tabular_model_gets_numeric_columns_in_schema_order(tmp_path: Path) -> None:
    schema = _schema(tmp_path, {"b": schema_pb2.FLOAT, "a": schema_pb2.FLOAT, "label": schema_pb2.INT})
    model = keras.Sequential([keras.layers.Dense(1, activation="sigmoid", input_shape=(2,))])
    export = signatures.export_serving_model(model, _fn_args(tmp_path, schema))
    served = tf.saved_model.load(export).signatures[signatures.SERVING_DEFAULT](a=tf.constant([1.0]), b=tf.constant([2.0]))
    p = float(model(np.array([[2.0, 1.0]], np.float32)).numpy()[0, 0])
    np.testing.assert_allclose(served["probabilities"].numpy(), [[1 - p, p]], rtol=1e-5)
    assert (Path(export) / "assets" / features.CLASS_NAMES_FILE).read_text().split() == ["0", "1"]


@pytest.mark.parametrize(
    "column", ["sepal length (cm)", "2nd.col", "a-b", "x:y", "café au lait", "_hidden", "Plain_Name1"]
)
def test_input_key_is_a_valid_signature_key_and_keeps_plain_names(column: str) -> None:
    key = features.input_key(column)
    assert key[0].isalpha() and key.replace("_", "").isalnum()
    if column == "Plain_Name1":
        assert key == column


def test_what_cannot_be_derived_is_one_clear_error(tmp_path: Path) -> None:
    image_schema = _schema(tmp_path, {"label": schema_pb2.INT}, image_length=10)
    model = keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(10,))])
    with pytest.raises(signatures.ServingContractError, match=r"10 values, neither s\*s nor s\*s\*3: pass image_shape="):
        signatures.export_serving_model(model, _fn_args(tmp_path, image_schema))
    square = _schema(tmp_path, {"label": schema_pb2.INT}, image_length=9)
    model9 = keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(9,))])
    with pytest.raises(signatures.ServingContractError, match=r"scores 3 classes but there are 2 class names"):
        signatures.export_serving_model(model9, _fn_args(tmp_path, square), class_names=["a", "b"])
    two_heads = keras.Model(model9.inputs, [model9.outputs[0], model9.outputs[0]])
    with pytest.raises(signatures.ServingContractError, match="the model returns 2 outputs"):
        signatures.export_serving_model(two_heads, _fn_args(tmp_path, square), class_names=["a", "b", "c"])
    tabular = _schema(tmp_path, {"x": schema_pb2.FLOAT, "label": schema_pb2.INT})
    x, y = keras.Input(shape=(1,), name="x"), keras.Input(shape=(1,), name="y")
    named = keras.Model([x, y], keras.layers.Dense(2)(keras.layers.Concatenate()([x, y])))
    with pytest.raises(signatures.ServingContractError, match=r"model input 'y' is not a feature column \(columns: x\)"):
        signatures.export_serving_model(named, _fn_args(tmp_path, tabular))
    assert not (tmp_path / "export").exists()
