"""serving.saved_model: one tag rule, one error type, one dtype table."""

from __future__ import annotations

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from serving.errors import Code, ServingError, UnservableModel, ValidationError
from serving.saved_model import (
    FROM_NUMPY,
    NUMPY_BY_ENUM_NAME,
    dtype_enum_name,
    dtype_name,
    numpy_dtype,
    numpy_dtype_name,
    read_class_names,
    read_meta_graphs,
    read_signature_defs,
    warmup_signature_names,
)


def _write(export_dir, *tag_sets):
    saved_model = saved_model_pb2.SavedModel()
    for tags in tag_sets:
        meta_graph = saved_model.meta_graphs.add()
        meta_graph.meta_info_def.tags.extend(tags)
        meta_graph.signature_def["serving_default"].CopyFrom(meta_graph_pb2.SignatureDef(method_name="m"))
        meta_graph.signature_def["__saved_model_init_op"].CopyFrom(meta_graph_pb2.SignatureDef())
    export_dir.mkdir(parents=True, exist_ok=True)
    (export_dir / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    return export_dir


def test_the_meta_graph_whose_tag_set_equals_the_tags_is_read(tmp_path):
    model = _write(tmp_path / "m", ["serve", "gpu"], ["train"])
    assert list(read_signature_defs(model, ("gpu", "serve"))) == ["serving_default"]
    assert list(read_signature_defs(model, ("serve", "gpu"), internal=True)) == ["__saved_model_init_op", "serving_default"]
    with pytest.raises(UnservableModel, match="Could not find meta graph def matching supplied tags: { serve }") as info:
        read_signature_defs(model)  # {"serve"} is a subset of {"serve", "gpu"}, not equal to it
    assert info.value.code == Code.NOT_FOUND


def test_one_error_type_for_servers_and_release_tools(tmp_path):
    with pytest.raises(UnservableModel, match="is not a SavedModel: expected saved_model.pb in it") as missing:
        read_signature_defs(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(UnservableModel, match="is not a valid SavedModel protobuf") as garbage:
        read_signature_defs(tmp_path / "bad")
    assert (missing.value.code, garbage.value.code) == (Code.NOT_FOUND, Code.DATA_LOSS)
    # The server reports it as a status, the release tools as a verdict.
    assert isinstance(garbage.value, ServingError) and isinstance(garbage.value, ValidationError)
    assert str(garbage.value) == garbage.value.message


def test_the_dtype_table_agrees_with_tensorflow():
    for name, dtype in NUMPY_BY_ENUM_NAME.items():
        number = types_pb2.DataType.Value(name)
        assert numpy_dtype(number) == dtype
        assert dtype_name(number) == name[3:].lower()
    assert dtype_name(types_pb2.DT_COMPLEX64) == "complex64"
    assert FROM_NUMPY[np.dtype(np.float32)] == types_pb2.DT_FLOAT
    assert numpy_dtype_name(np.dtype(np.float64)) == "double"
    assert numpy_dtype_name(np.dtype(object)) == "string"
    with pytest.raises(ServingError, match="Conversion of JSON or tensor values to type: complex64") as info:
        numpy_dtype(types_pb2.DT_COMPLEX64)
    assert info.value.code == Code.UNIMPLEMENTED


def test_tag_sets_in_file_order(tmp_path):
    export_dir = _write(tmp_path / "m", ["serve"], ["train", "serve"])
    assert [tags for tags, _ in read_meta_graphs(export_dir)] == [("serve",), ("serve", "train")]
    assert [list(signatures) for _, signatures in read_meta_graphs(export_dir)] == [["serving_default"]] * 2
    assert list(read_meta_graphs(export_dir, internal=True)[0][1]) == ["__saved_model_init_op", "serving_default"]
    with pytest.raises(UnservableModel, match="expected saved_model.pb"):
        read_meta_graphs(tmp_path / "empty")


def test_class_names_asset_one_per_line(tmp_path):
    assert read_class_names(tmp_path) is None
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "class_names.txt").write_text("cat\r\ndog\n\nbig bird\n", encoding="utf-8")
    assert read_class_names(tmp_path) == ["cat", "dog", "big bird"]


def test_warmup_signature_names_default_to_serving_default():
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.model_spec.name = "m"
    assert warmup_signature_names(log) == ["serving_default"]
    log = prediction_log_pb2.PredictionLog()
    log.multi_inference_log.request.tasks.add().model_spec.signature_name = "a"
    log.multi_inference_log.request.tasks.add().model_spec.signature_name = "b"
    assert warmup_signature_names(log) == ["a", "b"]
    assert dtype_enum_name(types_pb2.DT_FLOAT) == "DT_FLOAT" and dtype_enum_name(types_pb2.DT_RESOURCE) == "DT_RESOURCE"
