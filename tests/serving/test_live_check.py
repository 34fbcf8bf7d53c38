"""The post-push live check against real server processes (started by it, or already running)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from serving import layout, live_check

MODEL = "half_plus_two"


def _examples(xs, label=None) -> list[bytes]:
    import tensorflow as tf

    records = []
    for x in xs:
        example = tf.train.Example()
        example.features.feature["x"].float_list.value.append(x)
        if label is not None:
            example.features.feature["label"].int64_list.value.append(label)
        records.append(example.SerializeToString())
    return records


@pytest.mark.e2e
def test_starts_a_server_when_no_endpoint_is_given(tmp_path: Path, half_plus_two_model: Path):
    serving_dir = tmp_path / "serving"
    layout.publish(half_plus_two_model, serving_dir, MODEL)
    layout.publish(half_plus_two_model, serving_dir, MODEL)

    report = live_check.check_live_endpoint(
        serving_dir, MODEL, examples=_examples([1.0, 2.0, 6.0]), label_key=None, server="embedded"
    )

    assert report.ok, report.summary()
    assert report.version == 2
    assert report.started_server.startswith("embedded server")
    # An older version is served too when asked for: the started server pins it.
    older = live_check.check_live_endpoint(serving_dir, MODEL, version=1, label_key=None, server="embedded")
    assert older.ok and older.version == 1, older.summary()
    assert [c.protocol for c in report.checks] == ["grpc", "rest"]
    assert all(c.samples == 3 and c.matched == 3 and c.state == "AVAILABLE" for c in report.checks)
    summary = report.summary()
    assert summary.startswith(f"live check passed: '{MODEL}' version 2 on embedded server")
    assert "grpc 127.0.0.1:" in summary and "rest 127.0.0.1:" in summary and "3/3 answers match" in summary


@pytest.mark.e2e
def test_running_server_endpoints_accuracy_and_a_version_that_failed_to_load(
    tmp_path: Path, half_plus_two_model: Path, serve
):
    base = tmp_path / "serving" / MODEL
    shutil.copytree(half_plus_two_model, base / "1")
    with serve(base, model_name=MODEL) as server:
        # y = 0.5 x + 2: x = 2 gives 3, so label 3 is "correct" when `y` is read as the class.
        report = live_check.check_live_endpoint(
            base.parent, MODEL, grpc_endpoint=server.grpc_endpoint,
            rest_endpoint=f"127.0.0.1:{server.rest_port}", examples=_examples([2.0, 2.0], label=3),
            class_output="y", min_accuracy=1.0,
        )
        assert report.ok, report.summary()
        assert report.started_server is None
        assert report.endpoints == (f"grpc://{server.grpc_endpoint}", f"rest://127.0.0.1:{server.rest_port}")
        assert [c.accuracy for c in report.checks] == [1.0, 1.0]

        low = live_check.check_live_endpoint(
            base.parent, MODEL, grpc_endpoint=server.grpc_endpoint, examples=_examples([2.0], label=7),
            class_output="y", min_accuracy=0.5,
        )
        assert not low.ok
        assert "accuracy 0.000 on the samples is below 0.5" in low.summary()

        # Version 2 arrives with a truncated variables file: the server reports END, the check says why.
        broken = tmp_path / "broken"
        shutil.copytree(half_plus_two_model, broken)
        for data in (broken / "variables").glob("variables.data-*"):
            data.write_bytes(data.read_bytes()[:3])
        layout.publish(broken, base.parent, MODEL)
        failed = live_check.check_live_endpoint(
            base.parent, MODEL, grpc_endpoint=server.grpc_endpoint, wait_seconds=30,
        )
        assert not failed.ok
        (check,) = failed.checks
        assert check.state == "END"
        assert "version 2 failed to load" in check.reason
        assert f"grpc {server.grpc_endpoint}: FAILED" in failed.summary()


def test_reports_missing_versions_and_signatures_without_a_server(tmp_path: Path, half_plus_two_model: Path):
    report = live_check.check_live_endpoint(tmp_path, MODEL, grpc_endpoint="127.0.0.1:1")
    assert not report.ok and "no versions under" in report.summary()
    layout.publish(half_plus_two_model, tmp_path, MODEL)
    report = live_check.check_live_endpoint(tmp_path, MODEL, signature_name="nope", grpc_endpoint="127.0.0.1:1")
    assert not report.ok and "has no signature 'nope'" in report.reason


def test_row_matching_finds_the_first_differing_output():
    expected = {"y": np.array([1.0, 2.0, 3.0]), "name": np.array([b"a", b"b", b"c"], dtype=object)}
    assert live_check._row_matches(expected, {"y": np.array([1.0, 2.0, 3.0]), "name": expected["name"]}, 3) == (3, "")
    matched, why = live_check._row_matches(expected, {"y": np.array([1.0, 2.5, 3.0]), "name": expected["name"]}, 3)
    assert matched == 2 and why == "output 'y' row 1 differs from the in-process answer"
    assert live_check._row_matches(expected, {"y": expected["y"]}, 3)[0] == 0


def test_load_examples_reads_an_examplegen_split(tmp_path: Path):
    import tensorflow as tf

    split = tmp_path / "Split-eval"
    split.mkdir()
    with tf.io.TFRecordWriter(str(split / "data.gz"), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for record in _examples([1.0, 2.0, 3.0]):
            writer.write(record)
    assert live_check.load_examples(tmp_path, "eval", limit=2) == _examples([1.0, 2.0])
    with pytest.raises(ValueError, match="no TFRecord files in .*Split-train"):
        live_check.load_examples(tmp_path, "train")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("grpc://h:1", {"grpc_endpoint": "h:1"}),
        ("http://h:2,grpc://h:3", {"rest_endpoint": "h:2", "grpc_endpoint": "h:3"}),
        ("localhost:8500", {"grpc_endpoint": "localhost:8500"}),
        ("localhost:8501", {"rest_endpoint": "localhost:8501"}),
    ],
)
def test_endpoint_argument(text, expected):
    assert live_check.endpoints_from_arg(text) == expected


def test_endpoint_argument_needs_a_protocol_off_the_well_known_ports():
    with pytest.raises(ValueError, match="say which protocol, e.g. grpc://h:9000"):
        live_check.endpoints_from_arg("h:9000")
