"""TFServe peer (tfserve 0.3, 2018): the frozen GraphDef served by `TFServeApp` on a TF1 session.

    python tfserve_app.py FROZEN_PB SPEC_JSON PORT   # SPEC_JSON: {"input": "image:0", "outputs": {name: tensor}}

TFServe predates TF 2 and cannot load a SavedModel: it imports `tensorflow` and calls TF1 APIs
(`tf.Session`, `tf.gfile`, `tf.GraphDef`), so this shim hands it `tf.compat.v1` with eager
execution off, and the benchmark freezes the signature into a GraphDef for it. Its `-p` CLI flag
is broken, so the server is started from Python (`TFServeApp.run`, werkzeug, threaded).
POST / {"instances": [...]} -> {"predictions": [...]} (TF Serving's row format).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
sys.modules["tensorflow"] = tf.compat.v1  # the shim: tfserve sees TF1's API

from tfserve import TFServeApp  # noqa: E402 - must follow the TF1 shim above

PREFIX = "import/"  # tf.import_graph_def's default name scope, which TFServe's loader keeps


def main(frozen_pb: str, spec_json: str, port: str) -> None:
    with open(spec_json) as file:
        spec = json.load(file)
    names = list(spec["outputs"])
    tensors = [PREFIX + spec["outputs"][name] for name in names]
    input_tensor = PREFIX + spec["input"]

    def encode(body: bytes) -> dict[str, np.ndarray]:
        return {input_tensor: np.asarray(json.loads(body)["instances"], dtype=np.float32)}

    def decode(outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        columns = {}
        for name, tensor in zip(names, tensors):
            value = outputs[tensor]
            columns[name] = [v.decode() for v in value.tolist()] if value.dtype.kind in "SO" else value.tolist()
        count = len(next(iter(columns.values())))
        return {"predictions": [{name: column[i] for name, column in columns.items()} for i in range(count)]}

    app = TFServeApp(frozen_pb, [input_tensor], tensors, encode, decode, batch=True)
    app.run("127.0.0.1", int(port))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: tfserve_app.py FROZEN_PB SPEC_JSON PORT")
    main(*sys.argv[1:])
