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


_I64 = ".google.protobuf.Int64Value"
# The files declared here: message -> fields (name, number, type[, type name]), as in TF Serving's.
_FILES: dict[str, dict[str, list[tuple]]] = {
    "tensorflow_serving/config/monitoring_config.proto": {
        "PrometheusConfig": [("enable", 1, _F.TYPE_BOOL), ("path", 2, _F.TYPE_STRING)],
        "MonitoringConfig": [("prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")],
    },
    "tensorflow_serving/config/ssl_config.proto": {
        "SSLConfig": [
            ("server_key", 1, _F.TYPE_STRING),
            ("server_cert", 2, _F.TYPE_STRING),
            ("custom_ca", 3, _F.TYPE_STRING),
            ("client_verify", 4, _F.TYPE_BOOL),
        ],
    },
    "tensorflow_serving/servables/tensorflow/batching_parameters_subset.proto": {
        "BatchingParameters": [
            ("max_batch_size", 1, _F.TYPE_MESSAGE, _I64),
            ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, _I64),
            ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, _I64),
            ("num_batch_threads", 4, _F.TYPE_MESSAGE, _I64),
            ("thread_pool_name", 5, _F.TYPE_MESSAGE, ".google.protobuf.StringValue"),
            ("allowed_batch_sizes", 6, _F.TYPE_INT64, "", True),
            ("pad_variable_length_inputs", 7, _F.TYPE_BOOL),
            ("enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, ".google.protobuf.BoolValue"),
            ("max_execution_batch_size", 9, _F.TYPE_MESSAGE, _I64),
        ],
    },
}


def _build() -> dict[str, type]:
    pool = descriptor_pool.Default()
    try:
        pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")
    except KeyError:
        # wrappers.proto must be in the pool before a file that imports it.
        pool.FindFileByName(wrappers_pb2.DESCRIPTOR.name)
        for file_name, messages in _FILES.items():
            wrapped = any(f[3].startswith(".google.") for fields in messages.values() for f in fields if len(f) > 3)
            file_proto = descriptor_pb2.FileDescriptorProto(
                name=file_name,
                package="tensorflow.serving",
                syntax="proto3",
                dependency=[wrappers_pb2.DESCRIPTOR.name] if wrapped else [],
            )
            for name, fields in messages.items():
                file_proto.message_type.add(name=name, field=[_field(*f) for f in fields])
            pool.Add(file_proto)
    factory = message_factory.MessageFactory(pool)
    return {
        name: factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
        for messages in _FILES.values()
        for name in messages
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
    """The ModelServerConfig in a text file, every model's base path resolved as the server uses it."""
    config = read_text_proto(path, model_server_config_pb2.ModelServerConfig)
    for model in config.model_config_list.config:
        model.base_path = resolve_base_path(model.base_path)
    return config


def resolve_base_path(path: str) -> str:
    """A model base path as the server uses it: `~` expanded, absolute."""
    return os.path.abspath(os.path.expanduser(path))
