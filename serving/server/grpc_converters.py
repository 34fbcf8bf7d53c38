"""gRPC protos <-> the core's arrays: TensorProto <-> numpy (TF Serving's typed value fields), predict.

`predict_call` turns a PredictRequest into the core's `PredictCall`, `predict_response` its
outputs into a PredictResponse; tensors are read and written without TensorFlow's helpers.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2

from serving.errors import Code, ServingError, invalid
from serving.saved_model import FROM_NUMPY, dtype_name, numpy_dtype
from serving.server.servable import PredictCall, Servable

# The largest tensor a request may make (a single value broadcast over its shape included).
MAX_TENSOR_BYTES = 2**31 - 1


def response_spec(servable: Servable, signature_name: str) -> model_pb2.ModelSpec:
    """The ModelSpec a response names: the version that answered and the signature used."""
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature_name)
    spec.version.value = servable.version
    return spec


def predict_call(request: predict_pb2.PredictRequest, servable: Servable) -> PredictCall:
    """A PredictRequest for `servable` (the version its model_spec resolved to) as arrays."""
    signature = servable.signature(request.model_spec.signature_name)
    inputs = {k: tensor_proto_to_ndarray(v) for k, v in request.inputs.items()}
    output_filter = tuple(request.output_filter)
    if len(set(output_filter)) != len(output_filter):
        raise invalid("duplicate output tensor alias in output_filter")
    return PredictCall(servable, signature, inputs, output_filter)


def predict_response(call: PredictCall, outputs: Mapping[str, np.ndarray]) -> predict_pb2.PredictResponse:
    """The outputs as a PredictResponse (typed value fields, as TF Serving fills them)."""
    response = predict_pb2.PredictResponse(model_spec=response_spec(call.servable, call.signature.name))
    for name, array in outputs.items():
        response.outputs[name].CopyFrom(ndarray_to_tensor_proto(array))
    return response

_PROTO_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_HALF: "half_val",
}

def tensor_proto_to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """tf.make_ndarray without TF: tensor_content or the typed repeated field, with TF's
    rule that a single value is broadcast over the whole shape."""
    if proto.tensor_shape.unknown_rank:
        raise invalid("Tensor shape must be fully defined; got unknown rank")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in shape):
        raise invalid(f"Tensor shape {shape} has a negative dimension")
    dtype = numpy_dtype(proto.dtype)
    count = math.prod(shape)
    if count * dtype.itemsize > MAX_TENSOR_BYTES:
        # One value broadcast over a huge shape would allocate far more than a request carries.
        raise invalid(
            f"Tensor shape {shape} of {dtype_name(proto.dtype)} needs {count * dtype.itemsize} bytes; "
            f"the limit is {MAX_TENSOR_BYTES} (the largest gRPC message)"
        )
    if proto.dtype == types_pb2.DT_STRING:
        array = np.array(list(proto.string_val), dtype=object)
    elif proto.tensor_content:
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise invalid(
                f"tensor_content holds {len(proto.tensor_content)} bytes; shape {shape} of "
                f"{dtype_name(proto.dtype)} needs {count * dtype.itemsize}"
            )
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)
    elif proto.dtype == types_pb2.DT_HALF:
        array = np.array(proto.half_val, dtype=np.uint16).view(np.float16)
    else:
        array = np.array(getattr(proto, _PROTO_FIELD[proto.dtype]), dtype=dtype)
    if array.size == count:
        return array.reshape(shape)
    if array.size == 1 and count > 1:
        return np.full(shape, array[0], dtype=dtype)
    if array.size == 0:  # no values at all: zeros (empty strings) over the shape
        return np.full(shape, b"" if proto.dtype == types_pb2.DT_STRING else 0, dtype=dtype)
    raise invalid(f"Tensor has {array.size} values but shape {shape} needs {count}")

def ndarray_to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Fills the typed repeated field (TF Serving's default AsProtoField), so clients that read
    `outputs[...].float_val` directly keep working."""
    proto = tensor_pb2.TensorProto(tensor_shape={"dim": [{"size": int(d)} for d in array.shape]})
    kind = array.dtype.kind
    if kind in "OSU":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(
            v.encode("utf-8", "surrogatepass") if isinstance(v, str) else bytes(v) for v in array.reshape(-1).tolist()
        )
        return proto
    dtype = FROM_NUMPY.get(array.dtype)
    if dtype is None:
        raise ServingError(Code.INTERNAL, f"Cannot encode output of dtype {array.dtype}")
    proto.dtype = dtype
    flat = array.reshape(-1)
    if dtype == types_pb2.DT_HALF:
        proto.half_val.extend(flat.view(np.uint16).tolist())
    else:
        getattr(proto, _PROTO_FIELD[dtype]).extend(flat.tolist())
    return proto
