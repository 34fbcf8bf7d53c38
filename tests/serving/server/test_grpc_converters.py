"""TensorProto <-> numpy for the gRPC transport, as TF Serving fills the typed value fields."""

from __future__ import annotations

import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from serving.errors import Code, ServingError
from serving.server import grpc_converters


def test_tensor_proto_round_trip_uses_typed_fields():
    import tensorflow as tf

    array = np.array([[1.5, 2.0]], np.float32)
    proto = grpc_converters.ndarray_to_tensor_proto(array)
    assert list(proto.float_val) == [1.5, 2.0] and not proto.tensor_content
    assert grpc_converters.tensor_proto_to_ndarray(proto).tolist() == array.tolist()
    # tensor_content (what tf.make_tensor_proto writes) and string tensors read back too.
    packed = tf.make_tensor_proto(np.arange(6, dtype=np.int64).reshape(2, 3))
    assert grpc_converters.tensor_proto_to_ndarray(packed).tolist() == [[0, 1, 2], [3, 4, 5]]
    strings = tf.make_tensor_proto([b"a", b"bc"])
    assert grpc_converters.tensor_proto_to_ndarray(strings).tolist() == [b"a", b"bc"]
    # a single value fills the shape, as in tf.make_ndarray
    scalar_fill = tf.make_tensor_proto(7.0, shape=[2, 2])
    assert grpc_converters.tensor_proto_to_ndarray(scalar_fill).tolist() == [[7.0, 7.0], [7.0, 7.0]]


@pytest.mark.parametrize("shape", [[2**31], [2**20, 2**20], [2**62, 2**62, 4]])
def test_a_single_value_is_not_broadcast_over_a_huge_shape(shape):
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape)
    with pytest.raises(ServingError, match="the limit is 2147483647") as raised:
        grpc_converters.tensor_proto_to_ndarray(proto)
    assert raised.value.code == Code.INVALID_ARGUMENT
