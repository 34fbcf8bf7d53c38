"""TF Serving's config protos that tensorflow-serving-api does not ship, and the config readers.

The pip package has `model_server_config_pb2` but not `monitoring_config.proto`,
`ssl_config.proto` or `session_bundle_config.proto` (BatchingParameters). They are declared
here with the same package, message and field names and numbers as TF Serving's sources
(`tensorflow_serving/config/*.proto`, `servables/tensorflow/session_bundle_config.proto`), so the
very same text-format files the real binary reads parse here with `google.protobuf.text_format`.
"""

from __future__ import annotations

import os
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, text_format, wrappers_pb2
from google.protobuf import message_factory
from tensorflow_serving.config import model_server_config_pb2

__all__ = [
    "MonitoringConfig",
    "PrometheusConfig",
    "SSLConfig",
    "BatchingParameters",
    "read_text_proto",
    "read_model_server_config",
    "resolve_base_path",
]

_F = descriptor_pb2.FieldDescriptorProto


def _field(name: str, number: int, ftype: int, type_name: str = "", repeated: bool = False) -> _F:
    field = _F(
        name=name,
        number=number,
        type=ftype,
        label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
    )
    if type_name:
        field.type_name = type_name
    return field


def _build() -> dict[str, type]:
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")
        found = True
    except KeyError:
        found = False
    if not found:
        # wrappers.proto must be in the pool before a file that imports it.
        pool.FindFileByName(wrappers_pb2.DESCRIPTOR.name)
        monitoring = descriptor_pb2.FileDescriptorProto(
            name="tensorflow_serving/config/monitoring_config.proto",
            package="tensorflow.serving",
            syntax="proto3",
        )
        monitoring.message_type.add(
            name="PrometheusConfig",
            field=[_field("enable", 1, _F.TYPE_BOOL), _field("path", 2, _F.TYPE_STRING)],
        )
        monitoring.message_type.add(
            name="MonitoringConfig",
            field=[
                _field("prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")
            ],
        )
        ssl = descriptor_pb2.FileDescriptorProto(
            name="tensorflow_serving/config/ssl_config.proto",
            package="tensorflow.serving",
            syntax="proto3",
        )
        ssl.message_type.add(
            name="SSLConfig",
            field=[
                _field("server_key", 1, _F.TYPE_STRING),
                _field("server_cert", 2, _F.TYPE_STRING),
                _field("custom_ca", 3, _F.TYPE_STRING),
                _field("client_verify", 4, _F.TYPE_BOOL),
            ],
        )
        batching = descriptor_pb2.FileDescriptorProto(
            name="tensorflow_serving/servables/tensorflow/batching_parameters_subset.proto",
            package="tensorflow.serving",
            syntax="proto3",
            dependency=[wrappers_pb2.DESCRIPTOR.name],
        )
        i64 = ".google.protobuf.Int64Value"
        batching.message_type.add(
            name="BatchingParameters",
            field=[
                _field("max_batch_size", 1, _F.TYPE_MESSAGE, i64),
                _field("batch_timeout_micros", 2, _F.TYPE_MESSAGE, i64),
                _field("max_enqueued_batches", 3, _F.TYPE_MESSAGE, i64),
                _field("num_batch_threads", 4, _F.TYPE_MESSAGE, i64),
                _field("thread_pool_name", 5, _F.TYPE_MESSAGE, ".google.protobuf.StringValue"),
                _field("allowed_batch_sizes", 6, _F.TYPE_INT64, repeated=True),
                _field("pad_variable_length_inputs", 7, _F.TYPE_BOOL),
                _field("enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, ".google.protobuf.BoolValue"),
                _field("max_execution_batch_size", 9, _F.TYPE_MESSAGE, i64),
            ],
        )
        for file_proto in (monitoring, ssl, batching):
            pool.Add(file_proto)
    names = ("PrometheusConfig", "MonitoringConfig", "SSLConfig", "BatchingParameters")
    return {
        name: message_factory.MessageFactory(pool).GetPrototype(
            pool.FindMessageTypeByName(f"tensorflow.serving.{name}")
        )
        for name in names
    }


_CLASSES = _build()
PrometheusConfig = _CLASSES["PrometheusConfig"]
MonitoringConfig = _CLASSES["MonitoringConfig"]
SSLConfig = _CLASSES["SSLConfig"]
BatchingParameters = _CLASSES["BatchingParameters"]


def read_text_proto(path: str | Path, message_class: type):
    """Parses a text-format proto file into a new `message_class`, naming the file on error."""
    text = Path(path).read_text()
    message = message_class()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ValueError(
            f"{path}: not a valid text-format {message.DESCRIPTOR.full_name}: {error}"
        ) from None
    return message


def read_model_server_config(path: str | Path) -> model_server_config_pb2.ModelServerConfig:
    return read_text_proto(path, model_server_config_pb2.ModelServerConfig)


def resolve_base_path(path: str) -> str:
    """A model base path as the server uses it: `~` expanded, absolute."""
    return os.path.abspath(os.path.expanduser(path))
