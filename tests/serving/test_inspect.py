"""`python -m serving.inspect`: SavedModels, pushed versions, model dirs and TF1 frozen graphs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from serving import inspect


def test_saved_model_signatures_methods_dtypes_and_shapes(half_plus_two_model: Path, capsys):
    assert inspect.main([str(half_plus_two_model), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "saved_model" and doc["model"] is None
    (meta,) = doc["meta_graphs"]
    assert meta["tags"] == ["serve"]
    signatures = meta["signatures"]
    assert sorted(signatures) == ["classify_x_to_y", "regress_x_to_y", "regress_x_to_y2", "serving_default", "two_inputs"]
    assert signatures["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
    assert signatures["regress_x_to_y"]["method_name"] == "tensorflow/serving/regress"
    assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
    two = signatures["two_inputs"]
    assert {k: (v["dtype"], v["shape"]) for k, v in two["inputs"].items()} == {
        "a": ("DT_FLOAT", [-1, 2]),
        "b": ("DT_FLOAT", [-1]),
    }
    assert sorted(two["outputs"]) == ["doubled", "sum"]
    assert two["inputs"]["a"]["tensor"].endswith(":0")
    assert doc["class_names"] is None and doc["warmup"] is None

    assert inspect.main([str(half_plus_two_model)]) == 0
    text = capsys.readouterr().out
    assert "signature 'classify_x_to_y'  method tensorflow/serving/classify" in text
    assert "a: DT_FLOAT [-1, 2]" in text
    assert "warmup records: none" in text


def test_model_dir_inspects_latest_version_with_warmup(
    tmp_path: Path, half_plus_two_model: Path, warmup_writer, predict_request
):
    model_dir = tmp_path / "serving" / "hp2"
    shutil.copytree(half_plus_two_model, model_dir / "1")
    shutil.copytree(half_plus_two_model, model_dir / "3")
    (model_dir / "notaversion").mkdir()
    warmup_writer(
        model_dir / "3",
        [
            predict_request("m", x=np.array([1.0], np.float32)),
            predict_request("m", signature="two_inputs", a=np.ones((1, 2), np.float32), b=np.ones(1, np.float32)),
            predict_request("m", signature="serving_default", x=np.array([2.0], np.float32)),
        ],
    )
    report = inspect.inspect_path(model_dir)
    assert (report.model_name, report.version, report.versions) == ("hp2", 3, (1, 3))
    assert report.warmup.records == 3
    assert report.warmup.signatures == {"serving_default": 2, "two_inputs": 1}
    assert report.warmup.kinds == {"predict_log": 3}
    text = inspect.format_text(report)
    assert "model 'hp2' version 3 (versions on disk: 1, 3)" in text
    assert "warmup records (assets.extra/tf_serving_warmup_requests): 3: serving_default x2, two_inputs x1" in text
    # A pushed version directory, and its saved_model.pb, name the same version.
    assert inspect.inspect_path(model_dir / "1").version == 1
    assert inspect.inspect_path(model_dir / "1" / "saved_model.pb").versions == (1, 3)


def test_classifier_export_lists_class_names_and_image_signatures(classifier_model: Path):
    doc = inspect.to_json(inspect.inspect_path(classifier_model))
    assert doc["class_names"] == ["cat", "dog", "bird"]
    signatures = doc["meta_graphs"][0]["signatures"]
    assert signatures["serving_default"]["inputs"]["image"]["shape"] == [-1, 8, 8, 1]
    assert signatures["serving_image_bytes"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert signatures["serving_examples"]["method_name"] == "tensorflow/serving/classify"
    assert signatures["serving_default"]["outputs"]["probabilities"]["shape"] == [-1, 3]
    assert "class names (assets/class_names.txt): 3: cat, dog, bird" in inspect.format_text(
        inspect.inspect_path(classifier_model)
    )


def test_frozen_graph_inputs_are_placeholders_outputs_are_sinks(frozen_graph: Path, frozen_graph_two_sinks: Path, capsys):
    assert inspect.main([str(frozen_graph), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "frozen_graph"
    assert doc["inputs"] == [{"tensor": "input/x:0", "dtype": "DT_FLOAT", "shape": [-1, 3]}]
    assert doc["outputs"] == [{"tensor": "probs:0", "dtype": "DT_FLOAT", "shape": [-1, 2]}]

    report = inspect.inspect_path(frozen_graph_two_sinks)
    assert [t.tensor for t in report.inputs] == ["input/x:0"]
    assert sorted(t.tensor for t in report.outputs) == ["probs:0", "total:0"]
    assert "likely outputs (sink ops: no node consumes them):" in inspect.format_text(report)


@pytest.mark.parametrize(
    "name, content, code, message",
    [
        ("missing", None, 2, "does not exist: expected a SavedModel directory"),
        ("notes.txt", b"hello", 2, "is a file but not a .pb: expected"),
        ("empty_dir", "dir", 2, "has no saved_model.pb and no integer version directories"),
        ("garbage.pb", b"\xff\xfe not a graph", 1, "is not a frozen GraphDef"),
    ],
)
def test_bad_paths_are_one_line_and_exit_code(tmp_path: Path, capsys, name, content, code, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    assert inspect.main([str(path)]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"inspect: {path}") and message in line


def test_broken_saved_model_is_named(broken_model: Path, capsys):
    assert inspect.main([str(broken_model)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "is not a valid SavedModel protobuf" in line


def test_graph_with_an_unknown_op_is_named_by_inspect_and_refused_by_push(tmp_path: Path, capsys):
    from tensorflow.core.framework import graph_pb2

    from serving import push

    graph_def = graph_pb2.GraphDef()
    graph_def.node.add(name="a", op="NoSuchOp")
    path = tmp_path / "custom_op.pb"
    path.write_bytes(graph_def.SerializeToString())
    assert inspect.main([str(path)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"inspect: {path}: the GraphDef does not import: Op type not registered 'NoSuchOp'")
    serving_dir = tmp_path / "serving"
    assert push.main([str(path), "--serving-dir", str(serving_dir), "--model-name", "m"]) == push.EXIT_REFUSED
    assert "the GraphDef does not import" in capsys.readouterr().err
    assert not serving_dir.exists()
