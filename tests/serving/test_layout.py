"""Tests for the serving directory layout and the atomic publish."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from serving import layout


def _fake_saved_model(path: Path, payload: bytes = b"graph") -> Path:
    (path / "variables").mkdir(parents=True)
    (path / "variables" / "variables.index").write_bytes(b"index")
    (path / "variables" / "variables.data-00000-of-00001").write_bytes(b"data" * 1000)
    (path / "saved_model.pb").write_bytes(payload)
    return path


@pytest.mark.parametrize(
    "name, expected",
    [("1", 1), ("00000123", 123), ("0", 0), ("v1", None), ("0.1", None), ("-1", None),
     (".staging-3", None), ("9" * 30, None), ("", None)],
)
def test_parse_version_follows_tf_serving(name: str, expected: int | None) -> None:
    assert layout.parse_version(name) == expected


def test_list_versions_ignores_non_integer_dirs_and_files(tmp_path: Path) -> None:
    for name in ("3", "10", "v2", ".staging-11", "0.5"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert layout.list_versions(tmp_path) == [3, 10]
    assert layout.list_versions(tmp_path / "missing") == []


def test_publish_numbers_versions_monotonically(tmp_path: Path) -> None:
    source = _fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"
    first = layout.publish(source, serving, "digits")
    second = layout.publish(source, serving, "digits")
    assert (first.version, second.version) == (1, 2)
    assert Path(second.path) == serving / "digits" / "2"
    assert layout.is_complete_saved_model(second.path)
    (serving / "digits" / "41").mkdir()  # e.g. pushed by hand
    assert layout.publish(source, serving, "digits").version == 42


def test_publish_refuses_incomplete_model_and_leaves_serving_dir_untouched(tmp_path: Path) -> None:
    source = _fake_saved_model(tmp_path / "model")
    (source / "variables" / "variables.index").unlink()
    serving = tmp_path / "serving"
    with pytest.raises(layout.LayoutError, match="variables.index"):
        layout.publish(source, serving, "digits")
    assert layout.list_versions(serving / "digits") == []


def test_failed_copy_leaves_no_partial_version(tmp_path: Path) -> None:
    source = _fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"

    def broken_copy(src: str, dst: str) -> None:
        Path(dst).mkdir(parents=True)
        (Path(dst) / "saved_model.pb").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        layout.publish(source, serving, "digits", copy_tree=broken_copy)
    assert sorted(p.name for p in (serving / "digits").iterdir()) == [layout.LOCK_NAME]


def test_concurrent_publishers_get_distinct_versions(tmp_path: Path) -> None:
    source = _fake_saved_model(tmp_path / "model")
    serving = tmp_path / "serving"
    results: list[int] = []

    def push() -> None:
        results.append(layout.publish(source, serving, "digits").version)

    threads = [threading.Thread(target=push) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", ".."])
def test_model_names_outside_the_serving_dir_are_rejected(name: str, tmp_path: Path) -> None:
    with pytest.raises(layout.LayoutError, match="model name"):
        layout.publish(tmp_path, tmp_path / "serving", name)


def test_completeness_follows_the_checkpoint_the_graph_needs(tmp_path: Path, half_plus_two_model: Path) -> None:
    import shutil

    model = tmp_path / "m"
    shutil.copytree(half_plus_two_model, model)
    assert layout.saved_model_problem(model) is None
    data = next((model / "variables").glob("variables.data-*"))
    data.rename(model / "variables" / "variables.data-00000-of-00002")
    assert layout.saved_model_problem(model) == (
        "variables/ lacks data shard 00001 of 00002 (an incomplete copy?)"
    )
    for path in (model / "variables").iterdir():
        path.unlink()
    assert "variables/ directory is empty but the graph has variables" in layout.saved_model_problem(model)
    (model / "variables").rmdir()
    assert layout.saved_model_problem(model) == "variables/variables.index is missing (an incomplete copy?)"
    (model / "saved_model.pb").unlink()
    assert layout.saved_model_problem(model) == "it has no saved_model.pb (or saved_model.pbtxt)"


def test_an_unparsable_graph_is_left_to_the_loader(tmp_path: Path) -> None:
    # A garbage saved_model.pb with its variables is "complete": loading it fails and the
    # version ends with the loader's error, as in TF Serving.
    model = _fake_saved_model(tmp_path / "m", payload=b"\xff not a protobuf")
    assert layout.is_complete_saved_model(model)
    (model / "variables" / "variables.index").unlink()
    assert not layout.is_complete_saved_model(model)
