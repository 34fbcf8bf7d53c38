"""Readers of components/example_gen/logic.py on tiny files in the real formats."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from components.example_gen import logic
from pl_fixture_data import cifar_batch, idx_bytes, write_cifar_dir, write_cifar_tar, write_idx_dir, write_image_folder


def _by_split(dataset: logic.ImageDataset) -> dict[str, list[tuple[np.ndarray, int]]]:
    result: dict[str, list] = {"train": [], "eval": []}
    for split, pixels, label in dataset.records():
        result[split].append((pixels, label))
    return result


def test_digits_pixels_scale_0_16_to_0_255() -> None:
    pixels = logic.digits_pixels(np.array([[[0.0, 8.0], [16.0, 4.0]]]))
    assert pixels.dtype == np.uint8
    assert pixels.shape == (1, 2, 2, 1)
    assert pixels[..., 0].tolist() == [[[0, 128], [255, 64]]]


def test_digits_dataset_is_complete_and_split_deterministically() -> None:
    dataset = logic.load_digits(eval_percent=20)
    first, second = _by_split(dataset), _by_split(dataset)
    assert len(first["train"]) + len(first["eval"]) == 1797
    assert 0.15 < len(first["eval"]) / 1797 < 0.25
    assert [label for _, label in first["eval"]] == [label for _, label in second["eval"]]
    assert dataset.class_names == tuple(str(i) for i in range(10))
    assert dataset.shape == (8, 8, 1)
    assert max(int(p.max()) for p, _ in first["train"]) == 255


def test_hash_split_is_stable_and_respects_the_share() -> None:
    splits = [logic.hash_split(f"k{i}", 30) for i in range(2000)]
    assert splits == [logic.hash_split(f"k{i}", 30) for i in range(2000)]
    assert 0.25 < splits.count("eval") / 2000 < 0.35


def test_cifar_batch_is_converted_from_channel_first_to_hwc() -> None:
    payload, images, labels = cifar_batch(4, seed=1)
    parsed_images, parsed_labels = logic.parse_cifar_batch(payload, "batch")
    np.testing.assert_array_equal(parsed_images, images)
    np.testing.assert_array_equal(parsed_labels, labels)


def test_cifar_from_extracted_dir_and_from_tarball_agree(tmp_path: Path) -> None:
    written = write_cifar_dir(tmp_path / "dir")
    archive, _ = write_cifar_tar(tmp_path / "tar")
    from_dir = _by_split(logic.load_cifar10(tmp_path / "dir"))
    # The directory itself or the cifar-10-batches-py folder inside it both work.
    from_inner = _by_split(logic.load_cifar10(tmp_path / "dir" / "cifar-10-batches-py"))
    from_tar = _by_split(logic.load_cifar10(archive))
    assert len(from_dir["train"]) == 15 and len(from_dir["eval"]) == 3
    for split in ("train", "eval"):
        assert [label for _, label in from_dir[split]] == [label for _, label in from_tar[split]]
        assert [label for _, label in from_dir[split]] == [label for _, label in from_inner[split]]
    np.testing.assert_array_equal(from_dir["eval"][0][0], written["test_batch"][0][0])
    logic.check_cifar10(archive)
    logic.check_cifar10(tmp_path / "dir")


def test_cifar_garbage_batch_names_the_file(tmp_path: Path) -> None:
    write_cifar_dir(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(logic.DataSourceError, match="data_batch_3.*not a CIFAR-10 python batch"):
        list(logic.load_cifar10(tmp_path).records())


def test_cifar_missing_batch_is_reported_up_front(tmp_path: Path) -> None:
    write_cifar_dir(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(logic.DataSourceError, match="missing CIFAR-10 batch files test_batch"):
        logic.check_source("cifar10", str(tmp_path))


def test_cifar_path_that_is_not_a_tarball(tmp_path: Path) -> None:
    bogus = tmp_path / "cifar.tar.gz"
    bogus.write_bytes(b"hello")
    with pytest.raises(logic.DataSourceError, match=r"cifar\.tar\.gz.*expected cifar-10-python\.tar\.gz"):
        logic.check_source("cifar10", str(bogus))


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (False, True)])
def test_idx_files_gzipped_or_not(tmp_path: Path, gz: bool, dotted: bool) -> None:
    arrays = write_idx_dir(tmp_path, gz=gz, dotted=dotted)
    logic.check_source("mnist", str(tmp_path))
    dataset = logic.load_idx_dataset(tmp_path, logic.FASHION_MNIST_CLASSES)
    splits = _by_split(dataset)
    assert dataset.shape == (28, 28, 1)
    assert [label for _, label in splits["train"]] == arrays["train-labels-idx1-ubyte"].tolist()
    assert [label for _, label in splits["eval"]] == arrays["t10k-labels-idx1-ubyte"].tolist()
    np.testing.assert_array_equal(splits["eval"][1][0][..., 0], arrays["t10k-images-idx3-ubyte"][1])
    assert dataset.class_names[9] == "Ankle boot"


def test_idx_missing_file_is_named(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(logic.DataSourceError, match="missing t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"):
        logic.check_source("fashion_mnist", str(tmp_path))


def test_idx_bad_magic_and_truncation(tmp_path: Path) -> None:
    with pytest.raises(logic.DataSourceError, match="not an unsigned-byte IDX file"):
        logic.parse_idx(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", "x.idx")
    data = idx_bytes(np.zeros((2, 28, 28)))
    with pytest.raises(logic.DataSourceError, match=r"y\.idx: IDX header declares shape \(2, 28, 28\)"):
        logic.parse_idx(data[:-10], "y.idx")
    write_idx_dir(tmp_path, gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(logic.DataSourceError, match="train-images-idx3-ubyte: not an unsigned-byte IDX"):
        logic.check_source("mnist", str(tmp_path))


def test_idx_corrupt_gzip_is_named(tmp_path: Path) -> None:
    write_idx_dir(tmp_path, gz=True)
    good = (tmp_path / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(good[:20])
    with pytest.raises(logic.DataSourceError, match="train-images-idx3-ubyte.gz: corrupt gzip"):
        list(logic.load_idx_dataset(tmp_path, logic.DIGIT_CLASSES).records())


def test_image_folder_classes_sizes_and_splits(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pics", classes=("cat", "dog", "emu"), per_class=8, size=(10, 12))
    (root / ".hidden").mkdir()
    (root / "cat" / "notes.txt").write_text("not an image")
    dataset = logic.load_image_folder(root, size=(6, 5), eval_percent=30)
    assert dataset.class_names == ("cat", "dog", "emu")
    records = list(dataset.records())
    assert len(records) == 24
    assert {pixels.shape for _, pixels, _ in records} == {(6, 5, 3)}
    assert {label for _, _, label in records} == {0, 1, 2}
    assert {split for split, _, _ in records} == {"train", "eval"}
    # Dark class 0, bright class 1: resizing keeps the colour.
    cat = next(p for _, p, label in records if label == 0)
    assert abs(int(cat[..., 0].mean()) - 30) <= 3


def test_corrupt_image_names_the_file(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pics")
    bad = root / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(logic.DataSourceError, match=r"broken\.png: not a readable PNG/JPEG image"):
        logic.check_source("images", str(root))
    with pytest.raises(logic.DataSourceError, match=r"broken\.png: not a readable PNG/JPEG image"):
        list(logic.load_image_folder(root, size=(8, 8)).records())


def test_image_folder_needs_two_classes(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pics", classes=("only",))
    with pytest.raises(logic.DataSourceError, match="expected at least two class sub-folders"):
        logic.check_source("images", str(root))
    (root / "empty").mkdir()
    (root / "more").mkdir()
    (root / "more" / "a.png").write_bytes((root / "only" / "img0.png").read_bytes())
    with pytest.raises(logic.DataSourceError, match="class folder.*empty.*no .png"):
        logic.check_source("images", str(root))


def test_missing_path_and_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(logic.DataSourceError, match=r"nowhere: does not exist \(needed by --data mnist:PATH\)"):
        logic.check_source("mnist", str(tmp_path / "nowhere"))
    with pytest.raises(logic.DataSourceError, match="unknown image dataset 'svhn'"):
        logic.load_dataset("svhn", "")


def test_csv_header_checks(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a,b,label\n1,2,0\n")
    assert logic.check_csv(good, "label") == ["a", "b", "label"]
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("a,b,target\n1,2,0\n")
    with pytest.raises(logic.DataSourceError, match=r"no_label\.csv: no label column 'label'.*columns: a, b, target"):
        logic.check_source("csv", str(no_label))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(logic.DataSourceError, match="empty CSV file"):
        logic.check_csv(empty, "label")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,label\n")
    with pytest.raises(logic.DataSourceError, match="no data rows"):
        logic.check_csv(header_only, "label")


def test_messy_csv_that_the_pipeline_handles_passes_the_check(tmp_path: Path) -> None:
    """Odd names, a string column, a string label and empty cells: CsvExampleGen's exact header comes back."""
    messy = tmp_path / "messy.csv"
    messy.write_text(
        'sepal length (cm),2nd.width,Colour name,species\n'
        '5.1,,"dark, red",setosa\n'
        ',3.0,,versicolor\n'
    )
    assert logic.check_csv(messy, "species") == ["sepal length (cm)", "2nd.width", "Colour name", "species"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('a,"b",label\n1,2,0\n', r'column 2 of the header \("b"\) is quoted'),
        ("a, b,label\n1,2,0\n", r"column 2 of the header \(' b'\) has spaces around it"),
        ("a,,label\n1,2,0\n", "column 2 of the header has no name"),
        ("a,a,label\n1,2,0\n", "'a' appears twice"),
        ("a b,a-b,label\n1,2,0\n", "'a b' and 'a-b' both become the model input 'a_b'"),
        ("\ufeffa,label\n1,0\n", "byte-order mark"),
        ("a,label\n1,0\n2\n", "line 3 has 1 cells, the header names 2 columns"),
        ("a,label\n1,0\n2,\n", "line 3 has no value in the label column 'label'"),
        ("a,b,label\n1,,0\n2,,1\n", "column 'b' has no value on any row"),
        ("age,label\n31,0\nNA,1\n", "column 'age' holds numbers but 'NA' on line 3: leave a missing value empty"),
    ],
)
def test_csv_that_csvexamplegen_would_misread_is_refused_naming_the_column(tmp_path: Path, text: str, expected: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(logic.DataSourceError, match=expected):
        logic.check_source("csv", str(bad))


def test_encode_png_round_trips(tmp_path: Path) -> None:
    from PIL import Image
    import io

    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    decoded = np.asarray(Image.open(io.BytesIO(logic.encode_png(pixels))))
    np.testing.assert_array_equal(decoded, pixels)
    gray = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    assert np.asarray(Image.open(io.BytesIO(logic.encode_png(gray)))).shape == (4, 4)


def test_gzip_helper_passes_plain_bytes_through(tmp_path: Path) -> None:
    plain = tmp_path / "a"
    plain.write_bytes(b"abc")
    packed = tmp_path / "b"
    packed.write_bytes(gzip.compress(b"abc"))
    assert logic._open_maybe_gzip(plain) == logic._open_maybe_gzip(packed) == b"abc"
