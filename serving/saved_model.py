"""What a SavedModel on disk says: tags, signatures (one tag rule), class names, warmup; TF dtypes as numpy.

Read from `saved_model.pb` without loading the model or importing TensorFlow at import time, so
the server, the client and the release tools share one reading: the MetaGraph whose tag set
equals the requested tags (TF Serving's and `tf.saved_model.load`'s rule), and one error type,
`ServingError` with TF Serving's code and message.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from serving.errors import Code, ServingError, UnservableModel

SERVING_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
INIT_OP_SIGNATURE = "__saved_model_init_op"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
# The class names a classifier exports (components/trainer/signatures.py: one name per line, in
# output order) and TF Serving's warmup records, relative to the SavedModel directory.
CLASS_NAMES_ASSET = Path("assets") / "class_names.txt"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# Output names that hold a classifier's class scores, most specific first: the project's
# signature (components/trainer/signatures.py) returns `probabilities`.
SCORE_OUTPUTS = ("probabilities", "scores", "probs", "predictions", "logits", "output_0")

# tensorflow/core/framework/types.proto: the DataTypes a request can carry, as
# (enum value, enum name, numpy dtype fed to the signature). Numbers, so no TF import is needed.
DT_STRING = 7
_DTYPES: tuple[tuple[int, str, np.dtype], ...] = (
    (1, "DT_FLOAT", np.dtype(np.float32)),
    (2, "DT_DOUBLE", np.dtype(np.float64)),
    (19, "DT_HALF", np.dtype(np.float16)),
    (6, "DT_INT8", np.dtype(np.int8)),
    (5, "DT_INT16", np.dtype(np.int16)),
    (3, "DT_INT32", np.dtype(np.int32)),
    (9, "DT_INT64", np.dtype(np.int64)),
    (4, "DT_UINT8", np.dtype(np.uint8)),
    (17, "DT_UINT16", np.dtype(np.uint16)),
    (22, "DT_UINT32", np.dtype(np.uint32)),
    (23, "DT_UINT64", np.dtype(np.uint64)),
    (10, "DT_BOOL", np.dtype(np.bool_)),
    (DT_STRING, "DT_STRING", np.dtype(object)),
)
_NUMPY_DTYPES = {number: dtype for number, _, dtype in _DTYPES}
_ENUM_NAMES = {number: name for number, name, _ in _DTYPES}
# numpy -> DataType for outputs; object arrays are DT_STRING and handled by the caller.
FROM_NUMPY = {dtype: number for number, _, dtype in _DTYPES if dtype.kind != "O"}
# "DT_FLOAT" -> float32, as metadata JSON names dtypes.
NUMPY_BY_ENUM_NAME = {name: dtype for _, name, dtype in _DTYPES}


@dataclass(frozen=True)
class InputSpec:
    """What request conversion needs to know about one signature input: its TF DataType."""

    dtype: int


def dtype_enum_name(dtype: int) -> str:
    """The DataType enum name: `DT_FLOAT` for 1 (as saved_model_cli and TF Serving metadata say)."""
    name = _ENUM_NAMES.get(dtype)
    if name is None:
        from tensorflow.core.framework import types_pb2

        name = {v: k for k, v in types_pb2.DataType.items()}.get(dtype, f"DT_{dtype}")
    return name


def dtype_name(dtype: int) -> str:
    """TF's DataTypeString: `float` for DT_FLOAT, `string` for DT_STRING, ..."""
    name = dtype_enum_name(dtype)
    return name[3:].lower() if name.startswith("DT_") else name


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype used to feed a signature input of TF DataType `dtype`."""
    try:
        return _NUMPY_DTYPES[dtype]
    except KeyError:
        raise ServingError(
            Code.UNIMPLEMENTED, f"Conversion of JSON or tensor values to type: {dtype_name(dtype)}"
        ) from None


def numpy_dtype_name(dtype: np.dtype) -> str:
    """TF's name for the numpy dtype of an array (`double` for float64), for error messages."""
    number = FROM_NUMPY.get(dtype, DT_STRING if dtype.kind == "O" else None)
    return dtype_name(number) if number is not None else str(dtype)


def read_meta_graphs(
    export_dir: str | os.PathLike[str], *, internal: bool = False
) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """(tag set sorted, SignatureDefs as `read_signature_defs` gives them) of each MetaGraph in
    file order, from one read of saved_model.pb; UnservableModel as `read_signature_defs`."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(export_dir) / "saved_model.pb"
    if not path.is_file():
        raise UnservableModel(f"{Path(export_dir)} is not a SavedModel: expected {path.name} in it", Code.NOT_FOUND)
    saved_model = saved_model_pb2.SavedModel()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            saved_model.ParseFromString(path.read_bytes())
        except (DecodeError, RuntimeError) as error:
            caught.append(error)
    if caught or not saved_model.meta_graphs:
        raise UnservableModel(
            f"{path} is not a valid SavedModel protobuf"
            + (f" ({caught[0].message if hasattr(caught[0], 'message') else caught[0]})" if caught else ""),
            Code.DATA_LOSS,
        )
    return [
        (tuple(sorted(m.meta_info_def.tags)),
         {name: m.signature_def[name] for name in sorted(m.signature_def) if internal or not name.startswith("__")})
        for m in saved_model.meta_graphs
    ]


def read_signature_defs(
    export_dir: str | os.PathLike[str], tags: Sequence[str] = (SERVING_TAG,), *, internal: bool = False
) -> dict[str, Any]:
    """SignatureDefs (by name, sorted) of the MetaGraph whose tag set is exactly `tags`.

    `__saved_model_init_op` and any other `__*` key (internal ops, not signatures a client can
    call) only with `internal=True`, as TF Serving's metadata lists them. Raises UnservableModel
    (a ServingError): NOT_FOUND when there is no saved_model.pb or no MetaGraph with those tags,
    DATA_LOSS when the file does not parse.
    """
    meta_graphs = read_meta_graphs(export_dir, internal=internal)
    for found, signatures in meta_graphs:
        if set(found) == set(tags):
            return signatures
    raise UnservableModel(
        f"Could not find meta graph def matching supplied tags: {{ {' '.join(tags)} }}. To inspect "
        f"available tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`; "
        f"found {[list(tag_set) for tag_set, _ in meta_graphs]}",
        Code.NOT_FOUND,
    )


def tensor_dims(info: Any) -> tuple[int, ...] | None:
    """A TensorInfo's dimensions (-1 for any size), or None when its rank is unknown."""
    if not info.HasField("tensor_shape") or info.tensor_shape.unknown_rank:
        return None
    return tuple(int(d.size) for d in info.tensor_shape.dim)


def score_output(outputs: Mapping[str, np.ndarray]) -> str | None:
    """Which of a classifier's outputs holds its class scores: the first named in SCORE_OUTPUTS,
    else the only 2-D float output; None when neither (the one rule of server and tools)."""
    named = next((name for name in SCORE_OUTPUTS if name in outputs), None)
    floats = [name for name, array in outputs.items() if array.dtype.kind == "f" and array.ndim == 2]
    return named or (floats[0] if len(floats) == 1 else None)


def read_class_names(export_dir: str | os.PathLike[str]) -> list[str] | None:
    """The exported class names (assets/class_names.txt, one per line), or None without that asset."""
    path = Path(export_dir) / CLASS_NAMES_ASSET
    if not path.is_file():
        return None
    return [line.rstrip("\r") for line in path.read_text(encoding="utf-8").split("\n") if line.rstrip("\r")]


def iter_warmup_logs(export_dir: str | os.PathLike[str]) -> Iterator[Any]:
    """The PredictionLog records of assets.extra/tf_serving_warmup_requests (none without the file)."""
    path = Path(export_dir) / WARMUP_FILE
    if not path.is_file():
        return
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    for record in tf.compat.v1.io.tf_record_iterator(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        yield log


def warmup_signature_names(log: Any) -> list[str]:
    """The signatures one PredictionLog record calls ('' is serving_default, as TF Serving reads it)."""
    kind = log.WhichOneof("log_type")
    if kind == "multi_inference_log":
        specs = [task.model_spec for task in log.multi_inference_log.request.tasks]
    elif kind in ("predict_log", "classify_log", "regress_log"):
        specs = [getattr(log, kind).request.model_spec]
    else:
        specs = []
    return [spec.signature_name or DEFAULT_SIGNATURE for spec in specs]
