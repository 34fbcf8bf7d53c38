"""ImageExampleGen: construction, and the executor's Do() on tiny data in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.example_gen import executor, logic, spec
from components.example_gen.component import ImageExampleGen
from components.trainer import features
from pl_fixture_data import write_idx_dir, write_image_folder


def _properties(**overrides) -> dict:
    props = {
        spec.SOURCE_KIND_KEY: "digits",
        spec.SOURCE_PATH_KEY: "",
        spec.IMAGE_HEIGHT_KEY: 32,
        spec.IMAGE_WIDTH_KEY: 32,
        spec.EVAL_PERCENT_KEY: 20,
        spec.FINGERPRINT_KEY: "",
    }
    props.update(overrides)
    return props


def _run(tmp_path: Path, **overrides) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    executor.Executor().Do({}, {spec.EXAMPLES_KEY: [examples]}, _properties(**overrides))
    return examples


def _read(examples: standard_artifacts.Examples, split: str) -> list[tf.train.Example]:
    files = tf.io.gfile.glob(str(Path(artifact_utils.get_split_uri([examples], split)) / "*"))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_construction_channels_and_properties() -> None:
    component = ImageExampleGen(source_kind="images", source_path="/data/pics", image_size=(24, 16), eval_percent=10)
    assert set(component.outputs) == {spec.EXAMPLES_KEY}
    assert component.outputs[spec.EXAMPLES_KEY].type == standard_artifacts.Examples
    assert component.exec_properties[spec.SOURCE_KIND_KEY] == "images"
    assert component.exec_properties[spec.SOURCE_PATH_KEY] == "/data/pics"
    assert (component.exec_properties[spec.IMAGE_HEIGHT_KEY], component.exec_properties[spec.IMAGE_WIDTH_KEY]) == (24, 16)
    assert component.exec_properties[spec.EVAL_PERCENT_KEY] == 10
    assert component.inputs == {}


def test_digits_do_writes_splits_class_names_and_properties(tmp_path: Path) -> None:
    examples = _run(tmp_path)
    assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
    train, evaluation = _read(examples, "train"), _read(examples, "eval")
    counts = json.loads(examples.get_string_custom_property(spec.SPLIT_COUNTS_PROPERTY))
    assert counts == {"train": len(train), "eval": len(evaluation)}
    assert len(train) + len(evaluation) == 1797
    first = train[0].features.feature
    assert len(first[features.IMAGE_KEY].int64_list.value) == 64
    assert 0 <= first[features.LABEL_KEY].int64_list.value[0] <= 9
    assert (Path(examples.uri) / features.CLASS_NAMES_FILE).read_text().split("\n")[:3] == ["0", "1", "2"]
    assert json.loads(examples.get_string_custom_property(spec.IMAGE_SHAPE_PROPERTY)) == [8, 8, 1]
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"


def test_image_folder_do_resizes_to_the_configured_size(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pics", per_class=10)
    examples = _run(tmp_path, **{spec.SOURCE_KIND_KEY: "images", spec.SOURCE_PATH_KEY: str(root),
                                 spec.IMAGE_HEIGHT_KEY: 6, spec.IMAGE_WIDTH_KEY: 4, spec.EVAL_PERCENT_KEY: 30})
    rows = _read(examples, "train") + _read(examples, "eval")
    assert len(rows) == 20
    assert {len(r.features.feature[features.IMAGE_KEY].int64_list.value) for r in rows} == {6 * 4 * 3}
    assert json.loads(examples.get_string_custom_property(spec.CLASS_NAMES_PROPERTY)) == ["cat", "dog"]


def test_mnist_do_keeps_the_official_split(tmp_path: Path) -> None:
    arrays = write_idx_dir(tmp_path / "mnist", gz=True)
    examples = _run(tmp_path, **{spec.SOURCE_KIND_KEY: "mnist", spec.SOURCE_PATH_KEY: str(tmp_path / "mnist")})
    evaluation = _read(examples, "eval")
    assert [r.features.feature[features.LABEL_KEY].int64_list.value[0] for r in evaluation] == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert len(_read(examples, "train")) == 6


def test_corrupt_image_fails_naming_the_file(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pics")
    (root / "cat" / "zz_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(logic.DataSourceError, match=r"zz_bad\.jpg: not a readable PNG/JPEG image"):
        _run(tmp_path, **{spec.SOURCE_KIND_KEY: "images", spec.SOURCE_PATH_KEY: str(root)})


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({spec.SOURCE_KIND_KEY: "svhn"}, "source_kind='svhn': expected one of digits"),
        ({spec.SOURCE_KIND_KEY: "cifar10"}, "source_path is empty: the cifar10 source needs a file or directory"),
        ({spec.IMAGE_HEIGHT_KEY: 0}, "image size must be positive"),
        ({spec.EVAL_PERCENT_KEY: 95}, "eval_percent=95: expected 1..90"),
    ],
)
def test_bad_properties_are_rejected_before_reading(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _run(tmp_path, **overrides)
    assert not (tmp_path / "examples").exists()


def test_empty_split_is_an_error(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pics", per_class=1)
    with pytest.raises(logic.DataSourceError, match="split.*came out empty"):
        _run(tmp_path, **{spec.SOURCE_KIND_KEY: "images", spec.SOURCE_PATH_KEY: str(root), spec.EVAL_PERCENT_KEY: 1})


def test_encoder_writes_the_bytes_of_a_python_built_example() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(3, 3, 2) * 14
    expected = tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=pixels.reshape(-1).tolist())),
        features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[7])),
    }))
    assert tf.train.Example.FromString(executor.to_tf_example(pixels, 7)) == expected
    batch = executor.encode_examples(np.stack([pixels, 255 - pixels]), np.array([7, 0]))
    assert [tf.train.Example.FromString(b).features.feature[features.LABEL_KEY].int64_list.value[0] for b in batch] == [7, 0]


def test_a_large_split_is_sharded_and_keeps_every_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks of 100: the digits' train split spans many chunks, written round-robin to two files.
    monkeypatch.setattr(executor, "CHUNK_EXAMPLES", 100)
    examples = _run(tmp_path)
    train_dir = Path(artifact_utils.get_split_uri([examples], "train"))
    assert sorted(p.name for p in train_dir.iterdir()) == ["data_tfrecord-00000-of-00002.gz", "data_tfrecord-00001-of-00002.gz"]
    written = sorted((bytes(r.features.feature[features.IMAGE_KEY].int64_list.value), r.features.feature[features.LABEL_KEY].int64_list.value[0])
                     for r in _read(examples, "train"))
    source = sorted((bytes(pixels.reshape(-1).tolist()), label) for split, pixels, label in logic.load_digits(20).records() if split == "train")
    assert written == source
