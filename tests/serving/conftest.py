"""Fixtures for the serving tests: tiny SavedModels built here, and real server processes.

Stable fixture names (other test modules, e.g. test_client.py, rely on them):

- `half_plus_two_model` (session): path of one SavedModel directory (not versioned) computing
  y = 0.5 * x + 2, like TF Serving's `saved_model_half_plus_two` testdata. Signatures:
  `serving_default` (predict, input `x` float32 [batch], output `y` [batch]),
  `classify_x_to_y` (method tensorflow/serving/classify, input `inputs` = serialized
  tf.Example with float feature `x`, output `scores` [batch, 1]),
  `regress_x_to_y` (tensorflow/serving/regress, `inputs` -> `outputs` = 0.5x + 2),
  `regress_x_to_y2` (`outputs` = 0.5x + 3), and `two_inputs` (predict, inputs `a` float32
  [batch, 2] and `b` float32 [batch]; outputs `sum` = a0 + a1 + b and `doubled` = 2a).
- `half_plus_three_model` (session): the same model with y = 0.5 * x + 3, to tell versions apart.
- `broken_model` (session): a complete-looking SavedModel directory (saved_model.pb, variables)
  whose saved_model.pb is garbage, so loading it fails.
- `warmup_writer` (session): `write_warmup(export_dir, [PredictRequest, ...])`.
- `predict_request` (session): `make_predict_request(model, *, signature="", **inputs)`, a
  PredictRequest with each input array as a TensorProto.
- `method_namer` (session): `set_method_names(export_dir, {signature: method_name})`.
- `half_plus_two_dir` (function): a fresh model base path `<tmp>/models/half_plus_two` holding
  version `1` of that model; publish more versions with `serving.layout.publish`.
- `bytes_model` (session): a SavedModel whose `serving_default` takes `image_bytes` (string
  [batch]) and returns `echo_bytes` (the same bytes, so REST answers `{"b64": ...}`),
  `length` (int32) and `text` (the input with "!" appended, a plain string output).
- `bytes_model_dir` (function): base path `<tmp>/models/bytes_model` with version 1.
- `slow_model` (session) / `slow_model_dir` (function, `<tmp>/models/slow_model/1`): input `n`
  (int32 [batch]) runs max(n) rounds of a matmul and returns `y` = n: large n takes seconds.
- `frozen_graph` (session): a TF1 frozen GraphDef `.pb` built with tf.compat.v1 (variables
  frozen by convert_variables_to_constants): Placeholder `input/x` float32 [None, 3] -> `logits`
  = x @ FROZEN_W + FROZEN_B -> sink `probs` = softmax(logits). `frozen_graph_two_sinks`: the same
  plus a second sink `total` = sum(logits), so its output is ambiguous.
- `classifier_model` (session): a SavedModel exported by components/trainer/signatures.py
  (`save_classifier`) for a tiny softmax net on 8x8 grey images with class names CLASSIFIER_NAMES:
  `serving_default` (`image`), `serving_examples`, `serving_image_bytes`, assets/class_names.txt.
- `serve` (session): `serve(base_path=None, *, model_name="half_plus_two", args=(),
  config_file=None, timeout=90, server_defaults=False)` is a context manager that starts
  `python -m serving.server` on free loopback ports (`--pick_unused_ports --ready_file=...`),
  with a 1 s poll and as one process (`--num_server_processes=1`, which `args` may override:
  the default of one per core would double every test server's start-up and memory), unless
  `server_defaults` (then only the model flags: test_supervisor.py checks those defaults), with
  the other defaults (batching on), waits for readiness and yields its
  `serving.process.ModelServerProcess` (`grpc_port`, `rest_port`, `rest_endpoint`,
  `grpc_endpoint`, `process`, `ready` (the ready file's JSON), `logs()`, `is_alive()`);
  the process is terminated (SIGTERM) on exit.
- `half_plus_two_server` (module): one server on a half_plus_two base path with model name
  `half_plus_two`, shared by the tests of a module.

Helpers defined here (test modules cannot import a conftest reliably; use the fixtures):
`build_half_plus_two(path, offset=2.0)`, `build_bytes_model(path)`, `build_slow_model(path)`,
`set_method_names(export_dir, {signature: method_name})`, `write_warmup(export_dir, requests)`,
`make_broken_model(export_dir, good_model)`, `build_frozen_graph(path, two_sinks=False)`,
`build_classifier(path)`, `start_server(...)` (what `serve` returns).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import pytest

from serving import process
from serving.errors import LoadTimeout, ServerStartError
from serving.saved_model import CLASSIFY_METHOD, REGRESS_METHOD



# ---------------------------------------------------------------------------------------------
# model builders


def set_method_names(export_dir: str | os.PathLike, methods: Mapping[str, str]) -> None:
    """Sets SignatureDef.method_name in saved_model.pb (TF2's saver writes predict for all).

    TF Serving picks Classify/Regress signatures by method_name; tf.saved_model.save has no
    argument for it, so the tests edit the proto, which tf.saved_model.load ignores anyway.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(export_dir) / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        for key, method in methods.items():
            meta_graph.signature_def[key].method_name = method
    path.write_bytes(saved_model.SerializeToString())


def build_half_plus_two(export_dir: str | os.PathLike, offset: float = 2.0) -> Path:
    """y = 0.5 * x + offset (offset 3.0 gives TF Serving's half_plus_three)."""
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5, name="a")
            self.b = tf.Variable(offset, name="b")
            self.c = tf.Variable(3.0, name="c")

        def _x(self, serialized):
            parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
            return parsed["x"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self.a * x + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            return {"scores": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": tf.squeeze(self.a * self._x(inputs) + self.b, axis=1)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress2(self, inputs):
            return {"outputs": tf.squeeze(self.a * self._x(inputs) + self.c, axis=1)}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None], tf.float32, name="b"),
            ]
        )
        def two_inputs(self, a, b):
            return {"sum": tf.reduce_sum(a, axis=1) + b, "doubled": 2.0 * a}

    module = HalfPlusTwo()
    export_dir = Path(export_dir)
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={
            "serving_default": module.predict,
            "classify_x_to_y": module.classify,
            "regress_x_to_y": module.regress,
            "regress_x_to_y2": module.regress2,
            "two_inputs": module.two_inputs,
        },
    )
    set_method_names(
        export_dir,
        {"classify_x_to_y": CLASSIFY_METHOD, "regress_x_to_y": REGRESS_METHOD, "regress_x_to_y2": REGRESS_METHOD},
    )
    return export_dir


def build_bytes_model(export_dir: str | os.PathLike) -> Path:
    import tensorflow as tf

    class Bytes(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            return {
                "echo_bytes": tf.identity(image_bytes),
                "length": tf.strings.length(image_bytes),
                "text": tf.strings.join([image_bytes, "!"]),
            }

    module = Bytes()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return Path(export_dir)


def build_slow_model(export_dir: str | os.PathLike) -> Path:
    """`serving_default`: input `n` (int32 [batch]); spins max(n) rounds of a 128x128 matmul,
    returns `y` = n. For deadline tests: large n takes seconds, n = 0 is instant."""
    import tensorflow as tf

    class Slow(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="n")])
        def serve(self, n):
            rounds = tf.reduce_max(n)
            matrix = tf.eye(128) * 0.5

            def body(i, m):
                return i + 1, tf.tanh(tf.matmul(m, m))

            _, result = tf.while_loop(lambda i, m: i < rounds, body, (tf.constant(0), matrix))
            return {"y": n + tf.cast(tf.reduce_sum(result) * 0.0, tf.int32)}

    module = Slow()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return Path(export_dir)


FROZEN_W = ((1.0, 2.0), (0.5, -1.0), (0.0, 3.0))
FROZEN_B = (0.25, -0.5)
CLASSIFIER_NAMES = ("cat", "dog", "bird")


def build_frozen_graph(path: str | os.PathLike, two_sinks: bool = False) -> Path:
    """A TF1 frozen GraphDef (see `frozen_graph` in the module docstring) written to `path`."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 3], name="input/x")
        w = tf1.Variable(FROZEN_W, name="w")
        b = tf1.Variable(FROZEN_B, name="b")
        logits = tf.add(tf.matmul(x, w), b, name="logits")
        sinks = [tf.nn.softmax(logits, name="probs").op.name]
        if two_sinks:
            sinks.append(tf.reduce_sum(logits, name="total").op.name)
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            frozen = tf1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), sinks)
    path = Path(path)
    path.write_bytes(frozen.SerializeToString())
    return path


def build_classifier(export_dir: str | os.PathLike) -> Path:
    """The project's image classifier export for a fixed-weight softmax net on 8x8x1 images."""
    import numpy as np
    import tf_keras

    from components.trainer.signatures import ImageInputs, save_classifier

    model = tf_keras.Sequential([
        tf_keras.layers.Input((8, 8, 1)),
        tf_keras.layers.Flatten(),
        tf_keras.layers.Dense(len(CLASSIFIER_NAMES), activation="softmax"),
    ])
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0, 0.5, (64, 3)).astype("float32"), np.array([0.1, 0.0, -0.1], "float32")])
    save_classifier(
        model, str(export_dir), inputs=ImageInputs((8, 8, 1)), class_names=CLASSIFIER_NAMES,
        preprocess=lambda pixels: pixels / 255.0,
    )
    return Path(export_dir)


@pytest.fixture(scope="session")
def frozen_graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_frozen_graph(tmp_path_factory.mktemp("built") / "frozen.pb")


@pytest.fixture(scope="session")
def frozen_graph_two_sinks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_frozen_graph(tmp_path_factory.mktemp("built") / "two_sinks.pb", two_sinks=True)


@pytest.fixture(scope="session")
def classifier_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_classifier(tmp_path_factory.mktemp("built") / "classifier")


def make_predict_request(model: str, *, signature: str = "", **inputs: object):
    """A PredictRequest for `model` (and `signature`) with each input array as a TensorProto."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    return predict_pb2.PredictRequest(
        model_spec={"name": model, "signature_name": signature},
        inputs={key: tf.make_tensor_proto(value) for key, value in inputs.items()},
    )


@pytest.fixture(scope="session")
def predict_request():
    return make_predict_request


def write_warmup(export_dir: str | os.PathLike, requests: Sequence) -> Path:
    """Writes PredictionLog records (wrapping PredictRequests) as TF Serving warmup data."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(export_dir) / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for request in requests:
            writer.write(prediction_log_pb2.PredictionLog(predict_log={"request": request}).SerializeToString())
    return path


@pytest.fixture(scope="session")
def half_plus_two_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_half_plus_two(tmp_path_factory.mktemp("built") / "half_plus_two")


@pytest.fixture(scope="session")
def half_plus_three_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_half_plus_two(tmp_path_factory.mktemp("built") / "half_plus_three", offset=3.0)


def make_broken_model(export_dir: str | os.PathLike, good_model: str | os.PathLike) -> Path:
    """A copy of a good model whose saved_model.pb is garbage: complete-looking, fails to load."""
    export_dir = Path(export_dir)
    shutil.copytree(good_model, export_dir)
    (export_dir / "saved_model.pb").write_bytes(b"this is not a SavedModel protobuf")
    return export_dir


@pytest.fixture(scope="session")
def broken_model(tmp_path_factory: pytest.TempPathFactory, half_plus_two_model: Path) -> Path:
    return make_broken_model(tmp_path_factory.mktemp("built") / "broken", half_plus_two_model)


@pytest.fixture(scope="session")
def warmup_writer():
    return write_warmup


@pytest.fixture(scope="session")
def method_namer():
    return set_method_names


@pytest.fixture(scope="session")
def bytes_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bytes_model(tmp_path_factory.mktemp("built") / "bytes_model")


def as_version_1(model: Path, base: Path) -> Path:
    """A model base path holding `model` as version 1."""
    shutil.copytree(model, base / "1")
    return base


@pytest.fixture
def half_plus_two_dir(tmp_path: Path, half_plus_two_model: Path) -> Path:
    return as_version_1(half_plus_two_model, tmp_path / "models" / "half_plus_two")


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_slow_model(tmp_path_factory.mktemp("built") / "slow_model")


@pytest.fixture
def slow_model_dir(tmp_path: Path, slow_model: Path) -> Path:
    return as_version_1(slow_model, tmp_path / "models" / "slow_model")


@pytest.fixture
def bytes_model_dir(tmp_path: Path, bytes_model: Path) -> Path:
    return as_version_1(bytes_model, tmp_path / "models" / "bytes_model")


# ---------------------------------------------------------------------------------------------
# server processes


@contextlib.contextmanager
def start_server(
    base_path: str | os.PathLike | None = None,
    *,
    model_name: str = "half_plus_two",
    args: Sequence[str] = (),
    config_file: str | os.PathLike | None = None,
    timeout: float = 90.0,
    server_defaults: bool = False,
) -> Iterator[process.ModelServerProcess]:
    """Runs `python -m serving.server` on ports the OS picks until the block ends."""
    server = process.ModelServerProcess(
        model_name=None if config_file is not None else model_name,
        model_base_path=base_path,
        model_config_file=config_file,
        server=process.SERVER_EMBEDDED,
        extra_args=[*([] if server_defaults else ["--file_system_poll_wait_seconds=1"]), *args],
        pick_ports=True,
        one_process=not server_defaults,
        die_with_parent=True,
    )
    try:
        server.start()
        try:
            server.wait_until_ready(timeout)
        except (ServerStartError, LoadTimeout) as error:
            raise RuntimeError(f"{error}:\n{server.logs()[-4000:]}") from None
        yield server
    finally:
        server.stop(30)


@pytest.fixture(scope="session")
def serve():
    return start_server


def _still_running(pids: Sequence[int], timeout: float = 0.0) -> list[int]:
    """The pids still running after waiting up to `timeout` seconds for them all to exit."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                running.append(pid)
            except ProcessLookupError:
                pass
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.1)


@pytest.fixture(scope="session")
def still_running():
    return _still_running


@pytest.fixture(scope="module")
def half_plus_two_server(tmp_path_factory: pytest.TempPathFactory, half_plus_two_model: Path):
    base = as_version_1(half_plus_two_model, tmp_path_factory.mktemp("shared") / "half_plus_two")
    with start_server(base, model_name="half_plus_two") as server:
        yield server
