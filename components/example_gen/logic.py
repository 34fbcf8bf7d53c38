"""Readers for the image datasets the pipeline ingests (no TFX imports: plain data in, arrays out).

Every reader yields `(split, pixels, label)` with pixels a uint8 array [H, W, C] (0-255) and
a split of "train" or "eval", and knows its class names. Nothing downloads: a missing or
malformed file raises DataSourceError naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

KINDS = ("digits", "cifar10", "mnist", "fashion_mnist", "images")
TRAIN = "train"
EVAL = "eval"
SPLITS = (TRAIN, EVAL)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DIGIT_CLASSES = tuple(str(i) for i in range(10))

_CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST_BATCH = "test_batch"
_CIFAR_DIR = "cifar-10-batches-py"
_IDX_FILES = {
    (TRAIN, "images"): "train-images-idx3-ubyte",
    (TRAIN, "labels"): "train-labels-idx1-ubyte",
    (EVAL, "images"): "t10k-images-idx3-ubyte",
    (EVAL, "labels"): "t10k-labels-idx1-ubyte",
}

Record = tuple[str, np.ndarray, int]
# (split, uint8 pixels [N, H, W, C], int64 labels [N]): one split's images in their order.
Batch = tuple[str, np.ndarray, np.ndarray]
# Readers of one record at a time group this many into a Batch.
BATCH_SIZE = 1024


class DataSourceError(ValueError):
    """Input data that is missing, corrupt or not in the expected format."""


@dataclass(frozen=True)
class ImageDataset:
    """Class names, image shape and a re-iterable source of batches of (split, pixels, labels).

    `batches()` is what ExampleGen writes (whole arrays, as CIFAR and IDX files hold them);
    `records()` is the same data one image at a time.
    """

    class_names: tuple[str, ...]
    shape: tuple[int, int, int]
    batches: Callable[[], Iterator[Batch]]

    def records(self) -> Iterator[Record]:
        for split, images, labels in self.batches():
            for image, label in zip(images, labels):
                yield split, image, int(label)


def batched(records: Iterator[Record], size: int = BATCH_SIZE) -> Iterator[Batch]:
    """Groups records into per-split batches of up to `size`, keeping each split's order."""
    pending: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for split, pixels, label in records:
        images, labels = pending.setdefault(split, ([], []))
        images.append(pixels)
        labels.append(label)
        if len(images) >= size:
            yield split, np.stack(images), np.asarray(labels, dtype=np.int64)
            del pending[split]
    for split, (images, labels) in pending.items():
        yield split, np.stack(images), np.asarray(labels, dtype=np.int64)


def hash_split(key: str, eval_percent: int) -> str:
    """Deterministic split from a stable key: the same file or index always lands in the same split."""
    return EVAL if zlib.crc32(key.encode("utf-8")) % 100 < eval_percent else TRAIN


# --- digits (bundled with scikit-learn) ---------------------------------------------------


def digits_pixels(images: np.ndarray) -> np.ndarray:
    """sklearn digits values 0-16 as uint8 pixels 0-255, shape [N, 8, 8, 1]."""
    scaled = np.rint(np.asarray(images, dtype=np.float64) * (255.0 / 16.0))
    return np.clip(scaled, 0, 255).astype(np.uint8)[..., np.newaxis]


def load_digits(eval_percent: int = 20) -> ImageDataset:
    """scikit-learn's 1797 8x8 digits, located at execution time inside the installed package."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    pixels = digits_pixels(bunch.images)
    labels = np.asarray(bunch.target, dtype=np.int64)

    def batches() -> Iterator[Batch]:
        splits = np.array([hash_split(f"digits:{index}", eval_percent) for index in range(len(labels))])
        for split in SPLITS:
            chosen = splits == split
            yield split, pixels[chosen], labels[chosen]

    return ImageDataset(class_names=DIGIT_CLASSES, shape=(8, 8, 1), batches=batches)


# --- CIFAR-10 python version ----------------------------------------------------------------


def parse_cifar_batch(payload: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR-10 batch -> (uint8 [N, 32, 32, 3], int64 [N])."""
    try:
        batch = pickle.loads(payload, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as exc:  # pickle raises many types on garbage input
        raise DataSourceError(
            f"{name}: not a CIFAR-10 python batch (expected a pickled dict with b'data' and b'labels'): {exc}"
        ) from exc
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataSourceError(
            f"{name}: expected data of shape [N, 3072] and N labels, got {data.shape} and {len(labels)} labels"
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataSourceError(f"{name}: labels must be 0..9, got {labels.min()}..{labels.max()}")
    # CIFAR stores each image channel-first (1024 R, 1024 G, 1024 B).
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


def _tar_members(path: Path, names: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of `names` under cifar-10-batches-py/ in the order given, in one pass over the archive.

    A gzipped tar has no index: reading members one by one would decompress it from the start
    each time. Members that come before their turn are held until it.
    """
    wanted = {f"{_CIFAR_DIR}/{name}": name for name in names}
    held: dict[str, bytes] = {}
    order = iter(names)
    next_name = next(order, None)
    try:
        with tarfile.open(path, "r|*") as archive:
            for member in archive:
                name = wanted.get(member.name)
                if name is None or not member.isfile():
                    continue
                handle = archive.extractfile(member)
                held[name] = handle.read() if handle is not None else b""
                while next_name is not None and next_name in held:
                    yield next_name, held.pop(next_name)
                    next_name = next(order, None)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataSourceError(f"{path}: corrupt tar archive while reading {next_name}: {exc}") from exc
    if next_name is not None:
        raise DataSourceError(f"{path}: archive has no {_CIFAR_DIR}/{next_name}")


def _cifar_members(path: Path, names: Sequence[str]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the batch files from the tarball or an extracted directory, in the order given."""
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise DataSourceError(f"{path}: expected cifar-10-python.tar.gz (a tar archive) or its extracted directory")
        yield from _tar_members(path, names)
        return
    if path.is_dir():
        base = path / _CIFAR_DIR if (path / _CIFAR_DIR).is_dir() else path
        for name in names:
            file = base / name
            if not file.is_file():
                raise DataSourceError(f"{file}: missing CIFAR-10 batch file (expected {', '.join(cifar_batch_names())})")
            yield name, file.read_bytes()
        return
    raise DataSourceError(f"{path}: does not exist (expected cifar-10-python.tar.gz or its extracted batches)")


def cifar_batch_names() -> tuple[str, ...]:
    return _CIFAR_TRAIN_BATCHES + (_CIFAR_TEST_BATCH,)


def check_cifar10(path: Path) -> None:
    """Cheap up-front check: the archive or directory holds every batch file."""
    if path.is_dir():
        base = path / _CIFAR_DIR if (path / _CIFAR_DIR).is_dir() else path
        missing = [name for name in cifar_batch_names() if not (base / name).is_file()]
        if missing:
            raise DataSourceError(f"{base}: missing CIFAR-10 batch files {', '.join(missing)}")
        return
    if path.is_file():
        try:
            with tarfile.open(path, "r:*") as archive:
                names = set(archive.getnames())
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataSourceError(f"{path}: expected cifar-10-python.tar.gz (a tar archive): {exc}") from exc
        missing = [name for name in cifar_batch_names() if f"{_CIFAR_DIR}/{name}" not in names]
        if missing:
            raise DataSourceError(f"{path}: archive has no {', '.join(f'{_CIFAR_DIR}/{m}' for m in missing)}")
        return
    raise DataSourceError(f"{path}: does not exist (expected cifar-10-python.tar.gz or its extracted batches)")


def load_cifar10(path: str | os.PathLike[str]) -> ImageDataset:
    """CIFAR-10 from the python tarball or its extracted batches; its test batch is the eval split."""
    source = Path(path)
    inner = source / _CIFAR_DIR if (source / _CIFAR_DIR).is_dir() else source

    def display(name: str) -> str:
        return f"{source}:{_CIFAR_DIR}/{name}" if source.is_file() else str(inner / name)

    def batches() -> Iterator[Batch]:
        for name, payload in _cifar_members(source, cifar_batch_names()):
            images, labels = parse_cifar_batch(payload, display(name))
            yield (EVAL if name == _CIFAR_TEST_BATCH else TRAIN), images, labels

    return ImageDataset(class_names=CIFAR10_CLASSES, shape=(32, 32, 3), batches=batches)


# --- MNIST / Fashion-MNIST IDX files --------------------------------------------------------


def _open_maybe_gzip(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataSourceError(f"{path}: corrupt gzip file: {exc}") from exc
    return data


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """An IDX file (unsigned byte payload) as a uint8 array of its declared shape."""
    if len(data) < 4:
        raise DataSourceError(f"{name}: too short for an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim < 1:
        raise DataSourceError(
            f"{name}: not an unsigned-byte IDX file (expected magic 0x0000 08 NN, got {data[:4].hex()})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataSourceError(f"{name}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise DataSourceError(
            f"{name}: IDX header declares shape {dims} ({expected} bytes) but the file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def find_idx_files(directory: Path) -> dict[tuple[str, str], Path]:
    """The four IDX files in `directory`, gzipped or not, '-' or '.' before 'idx'."""
    if not directory.is_dir():
        raise DataSourceError(
            f"{directory}: not a directory (expected a folder with the four MNIST-format IDX files)"
        )
    found: dict[tuple[str, str], Path] = {}
    names = {child.name: child for child in directory.iterdir() if child.is_file()}
    for key, stem in _IDX_FILES.items():
        prefix, _, suffix = stem.rpartition("-idx")
        pattern = re.compile(rf"^{re.escape(prefix)}[-.]idx{re.escape(suffix)}(\.gz)?$")
        matches = sorted(name for name in names if pattern.match(name))
        if not matches:
            raise DataSourceError(f"{directory}: missing {stem} or {stem}.gz (one of the four MNIST-format IDX files)")
        found[key] = names[matches[0]]
    return found


def load_idx_dataset(path: str | os.PathLike[str], class_names: Sequence[str]) -> ImageDataset:
    """MNIST or Fashion-MNIST from the four IDX files; t10k is the eval split."""
    files = find_idx_files(Path(path))

    def batches() -> Iterator[Batch]:
        for split in SPLITS:
            images = parse_idx(_open_maybe_gzip(files[(split, "images")]), str(files[(split, "images")]))
            labels = parse_idx(_open_maybe_gzip(files[(split, "labels")]), str(files[(split, "labels")]))
            if images.ndim != 3 or images.shape[1:] != (28, 28):
                raise DataSourceError(f"{files[(split, 'images')]}: expected images of shape [N, 28, 28], got {images.shape}")
            if labels.ndim != 1 or len(labels) != len(images):
                raise DataSourceError(
                    f"{files[(split, 'labels')]}: expected {len(images)} labels, got shape {labels.shape}"
                )
            if len(labels) and labels.max() >= len(class_names):
                raise DataSourceError(f"{files[(split, 'labels')]}: label {labels.max()} >= {len(class_names)} classes")
            yield split, images[..., np.newaxis], labels.astype(np.int64)

    return ImageDataset(class_names=tuple(class_names), shape=(28, 28, 1), batches=batches)


# --- a folder with one sub-folder per class -------------------------------------------------


def list_image_folder(directory: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """(class names, [(file, class id)]) from DIR/<class>/*.png|jpg|jpeg, sorted for stability."""
    if not directory.is_dir():
        raise DataSourceError(f"{directory}: not a directory (expected a folder with one sub-folder of PNG/JPEG images per class)")
    classes = sorted(child.name for child in directory.iterdir() if child.is_dir() and not child.name.startswith("."))
    files: list[tuple[Path, int]] = []
    for class_id, name in enumerate(classes):
        for file in sorted((directory / name).iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                files.append((file, class_id))
    used = sorted({class_id for _, class_id in files})
    if len(used) < 2:
        raise DataSourceError(
            f"{directory}: expected at least two class sub-folders holding .png/.jpg/.jpeg images, "
            f"found {len(used)} (sub-folders: {', '.join(classes) or 'none'})"
        )
    empty = [classes[i] for i in range(len(classes)) if i not in used]
    if empty:
        raise DataSourceError(f"{directory}: class folder(s) {', '.join(empty)} hold no .png/.jpg/.jpeg images")
    return tuple(classes), files


def read_image(file: Path, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Decodes a PNG/JPEG and resizes it to (height, width); uint8 [H, W, C]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image = image.convert("RGB" if channels == 3 else "L")
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataSourceError(f"{file}: not a readable PNG/JPEG image: {exc}") from exc
    return pixels.reshape(size[0], size[1], channels)


def load_image_folder(path: str | os.PathLike[str], size: tuple[int, int], eval_percent: int = 20) -> ImageDataset:
    """Images from DIR/<class>/ resized to `size`; split by a hash of the relative path."""
    directory = Path(path)
    classes, files = list_image_folder(directory)

    def records() -> Iterator[Record]:
        for file, class_id in files:
            key = file.relative_to(directory).as_posix()
            yield hash_split(key, eval_percent), read_image(file, size), class_id

    return ImageDataset(class_names=classes, shape=(size[0], size[1], 3), batches=lambda: batched(records()))


def verify_image_folder(path: str | os.PathLike[str]) -> int:
    """Up-front check that every image decodes; returns the count. Raises on the first bad file."""
    from PIL import Image

    _, files = list_image_folder(Path(path))
    for file, _ in files:
        try:
            with Image.open(file) as image:
                image.verify()
        except Exception as exc:  # PIL raises many exception types on corrupt data
            raise DataSourceError(f"{file}: not a readable PNG/JPEG image: {exc}") from exc
    return len(files)


# --- dispatch -------------------------------------------------------------------------------


def load_dataset(kind: str, path: str, *, image_size: tuple[int, int] = (32, 32), eval_percent: int = 20) -> ImageDataset:
    """The reader for one image data kind."""
    if kind == "digits":
        return load_digits(eval_percent)
    if kind == "cifar10":
        return load_cifar10(path)
    if kind == "mnist":
        return load_idx_dataset(path, DIGIT_CLASSES)
    if kind == "fashion_mnist":
        return load_idx_dataset(path, FASHION_MNIST_CLASSES)
    if kind == "images":
        return load_image_folder(path, image_size, eval_percent)
    raise DataSourceError(f"unknown image dataset {kind!r}: expected digits, cifar10, mnist, fashion_mnist or images")


def check_source(kind: str, path: str, *, label_key: str = "label") -> None:
    """Validates a data source before anything runs: paths exist and hold what the kind needs."""
    if kind == "digits":
        return
    target = Path(path)
    if not target.exists():
        raise DataSourceError(f"{target}: does not exist (needed by --data {kind}:PATH)")
    if kind == "cifar10":
        check_cifar10(target)
    elif kind in ("mnist", "fashion_mnist"):
        for file in find_idx_files(target).values():
            with open(file, "rb") as handle:
                head = handle.read(4)
            if head[:2] == b"\x1f\x8b":
                try:
                    with gzip.open(file) as handle:
                        head = handle.read(4)
                except (OSError, EOFError) as exc:
                    raise DataSourceError(f"{file}: corrupt gzip file: {exc}") from exc
            if len(head) < 4 or head[:3] != b"\x00\x00\x08":
                raise DataSourceError(f"{file}: not an unsigned-byte IDX file (expected magic 0x000008NN, got {head.hex()})")
    elif kind == "images":
        verify_image_folder(target)
    elif kind == "csv":
        check_csv(target, label_key)
    else:
        raise DataSourceError(f"unknown dataset {kind!r}")


# Cells that mean "no value" in exported spreadsheets; CsvExampleGen would read them as text.
_NA_TOKENS = frozenset({"na", "n/a", "nan", "null", "none", "?", "-", "missing"})


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def check_csv(file: Path, label_key: str) -> list[str]:
    """Checks a CSV the way CsvExampleGen will read it; returns the header (TFX's column names).

    Handled downstream: string columns, string labels, empty cells, names with spaces, dots or
    leading digits. Refused here, naming the column: names CsvExampleGen would mangle (quotes,
    surrounding spaces, a byte-order mark), empty or duplicate names, names that collide as
    signature inputs, rows of the wrong length, a column without any value, a label missing on
    a row, a numeric column with text such as "NA" standing for missing values.
    """
    import csv

    from components.trainer.names import input_key

    if not file.is_file():
        raise DataSourceError(f"{file}: not a file (expected a CSV file with a header row)")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{file}: not a readable UTF-8 CSV file: {exc}") from exc
    if text.startswith("\ufeff"):
        raise DataSourceError(f"{file}: starts with a UTF-8 byte-order mark, which would become part of the first column name; save it without BOM")
    first_line = text.split("\n", 1)[0].strip()
    if not first_line:
        raise DataSourceError(f"{file}: empty CSV file (expected a header row naming the columns)")
    # CsvExampleGen names the columns by splitting the first line on ',' (io_utils.load_csv_column_names).
    header = first_line.split(",")
    seen: dict[str, str] = {}
    for index, name in enumerate(header, start=1):
        where = f"{file}: column {index} of the header"
        if not name.strip():
            raise DataSourceError(f"{where} has no name: name every column")
        if '"' in name or "'" in name:
            raise DataSourceError(f"{where} ({name}) is quoted: CsvExampleGen keeps quotes in names and splits on every ','; remove the quotes")
        if name != name.strip():
            raise DataSourceError(f"{where} ({name!r}) has spaces around it: remove them (they would be part of the feature name)")
        key = input_key(name)
        if name in seen.values():
            raise DataSourceError(f"{where}: {name!r} appears twice: column names must be unique")
        if key in seen:
            raise DataSourceError(f"{where}: {seen[key]!r} and {name!r} both become the model input {key!r}: rename one")
        seen[key] = name
    if label_key not in header:
        raise DataSourceError(
            f"{file}: no label column {label_key!r} in the header (columns: {', '.join(header)}); "
            "pass --label-key NAME or add the column"
        )
    if len(header) < 2:
        raise DataSourceError(f"{file}: expected at least one feature column besides {label_key!r}")
    label = header.index(label_key)
    filled = [0] * len(header)
    numbers = [0] * len(header)
    text_cell: list[tuple[int, str] | None] = [None] * len(header)
    rows = 0
    try:
        reader = csv.reader(text.splitlines()[1:])
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            rows += 1
            if len(row) != len(header):
                raise DataSourceError(f"{file}: line {line} has {len(row)} cells, the header names {len(header)} columns")
            if not row[label].strip():
                raise DataSourceError(f"{file}: line {line} has no value in the label column {label_key!r}: every row needs a label")
            for index, cell in enumerate(row):
                if not cell:
                    continue
                filled[index] += 1
                if _is_number(cell):
                    numbers[index] += 1
                elif text_cell[index] is None:
                    text_cell[index] = (line, cell)
    except csv.Error as exc:
        raise DataSourceError(f"{file}: not a readable CSV file: {exc}") from exc
    if not rows:
        raise DataSourceError(f"{file}: has a header but no data rows")
    for index, name in enumerate(header):
        if not filled[index]:
            raise DataSourceError(f"{file}: column {name!r} has no value on any row: drop it")
        found = text_cell[index]
        if found and numbers[index] and found[1].strip().lower() in _NA_TOKENS:
            raise DataSourceError(
                f"{file}: column {name!r} holds numbers but {found[1]!r} on line {found[0]}: leave a missing value empty "
                "(CsvExampleGen would read the whole column as text)"
            )
    return header


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, C] array (used by tests and clients)."""
    from PIL import Image

    mode = "L" if pixels.shape[-1] == 1 else "RGB"
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()
