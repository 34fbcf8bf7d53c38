"""Trainer module: settings, models, run_fn on tiny examples, and the exported signatures."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from components.example_gen import executor as example_gen_executor
from components.example_gen import logic, spec as example_gen_spec
from components.trainer import features, model, signatures
from components.trainer import settings as settings_module
from pl_fixture_data import write_image_folder


def _examples(tmp_path: Path, root: Path, size=(8, 8)) -> str:
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    example_gen_executor.Executor().Do({}, {example_gen_spec.EXAMPLES_KEY: [examples]}, {
        example_gen_spec.SOURCE_KIND_KEY: "images", example_gen_spec.SOURCE_PATH_KEY: str(root),
        example_gen_spec.IMAGE_HEIGHT_KEY: size[0], example_gen_spec.IMAGE_WIDTH_KEY: size[1],
        example_gen_spec.EVAL_PERCENT_KEY: 30,
    })
    return examples.uri


def _fn_args(tmp_path: Path, examples_uri: str, settings: model.TrainerSettings, schema_file: str | None = None):
    return SimpleNamespace(
        custom_config=settings.to_custom_config(),
        train_files=[f"{examples_uri}/Split-train/*"],
        eval_files=[f"{examples_uri}/Split-eval/*"],
        model_run_dir=str(tmp_path / "model_run"),
        serving_model_dir=str(tmp_path / "serving_model"),
        schema_file=schema_file,
        schema_path=schema_file,
    )


def _signature_defs(export_dir: str):
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    return saved.meta_graphs[0].signature_def


def test_settings_round_trip_through_custom_config() -> None:
    settings = model.TrainerSettings(image_shape=(28, 28, 1), epochs=3, conv_filters=(8, 16))
    config = settings.to_custom_config()
    assert json.loads(json.dumps(config)) == config  # exec properties must be plain JSON
    assert model.TrainerSettings.from_custom_config(config) == settings


def test_settings_reject_unknown_keys_and_tasks() -> None:
    with pytest.raises(ValueError, match=r"unknown trainer settings \['epoch'\]"):
        model.TrainerSettings.from_custom_config({"epoch": 3})
    with pytest.raises(ValueError, match="task 'audio'"):
        model.TrainerSettings.from_custom_config({"task": "audio"})


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
def test_cnn_takes_raw_pixels_and_outputs_probabilities(shape) -> None:
    cnn = model.build_cnn(shape, 10, model.TrainerSettings(conv_filters=(4, 8), dense_units=8))
    out = cnn(tf.fill([2, *shape], 255.0)).numpy()
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_image_run_fn_exports_every_signature_with_class_names(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pics", classes=("cat", "dog"), per_class=12, size=(8, 8))
    uri = _examples(tmp_path, root)
    settings = model.TrainerSettings(image_shape=(8, 8, 3), epochs=3, batch_size=8, conv_filters=(4,), dense_units=8, patience=2)
    model.run_fn(_fn_args(tmp_path, uri, settings))
    export = str(tmp_path / "serving_model")

    defs = _signature_defs(export)
    assert defs[signatures.EXAMPLES_SIGNATURE].method_name == signatures.CLASSIFY_METHOD_NAME
    assert defs[signatures.SERVING_DEFAULT].method_name == signatures.PREDICT_METHOD_NAME
    assert set(defs[signatures.SERVING_DEFAULT].inputs) == {signatures.IMAGE_INPUT}
    assert set(defs[signatures.SERVING_DEFAULT].outputs) == {"probabilities", "class_id", "class_name"}
    assert set(defs[signatures.EXAMPLES_SIGNATURE].inputs) == {"inputs"}
    assert set(defs[signatures.EXAMPLES_SIGNATURE].outputs) == {"classes", "scores"}
    assert set(defs[signatures.IMAGE_BYTES_SIGNATURE].inputs) == {signatures.IMAGE_BYTES_INPUT}
    assert (Path(export) / "assets" / features.CLASS_NAMES_FILE).read_text() == "cat\ndog\n"
    assert (tmp_path / "model_run" / "best_weights").is_dir()

    loaded = tf.saved_model.load(export)
    images = [logic.read_image(path, (8, 8)) for path in sorted((root / "dog").iterdir())[:2]]
    pixels = np.stack(images).astype(np.float32)
    by_pixels = loaded.signatures[signatures.SERVING_DEFAULT](image=tf.constant(pixels))
    assert by_pixels["probabilities"].shape == (2, 2)
    assert set(by_pixels["class_name"].numpy().tolist()) <= {b"cat", b"dog"}
    names = [b"cat", b"dog"]
    assert [names[i] for i in by_pixels["class_id"].numpy()] == by_pixels["class_name"].numpy().tolist()

    serialized = [example_gen_executor.to_tf_example(image, 1) for image in images]
    classified = loaded.signatures[signatures.EXAMPLES_SIGNATURE](inputs=tf.constant(serialized))
    assert classified["classes"].numpy().tolist() == [names, names]
    np.testing.assert_allclose(classified["scores"].numpy(), by_pixels["probabilities"].numpy(), rtol=1e-5)

    encoded = [logic.encode_png(image) for image in images]
    by_bytes = loaded.signatures[signatures.IMAGE_BYTES_SIGNATURE](image_bytes=tf.constant(encoded))
    np.testing.assert_allclose(by_bytes["probabilities"].numpy(), by_pixels["probabilities"].numpy(), rtol=1e-4, atol=1e-5)


def test_image_run_fn_without_class_names_file_is_refused(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "pics", per_class=6, size=(8, 8))
    uri = _examples(tmp_path, root)
    (Path(uri) / features.CLASS_NAMES_FILE).unlink()
    with pytest.raises(model.TrainingDataError, match="no class_names.txt beside"):
        model.run_fn(_fn_args(tmp_path, uri, model.TrainerSettings(image_shape=(8, 8, 3), epochs=1)))


_KINDS = {schema_pb2.FLOAT: "float_list", schema_pb2.INT: "int64_list", schema_pb2.BYTES: "bytes_list"}


def _write_columns(tmp_path: Path, columns: dict, row, rows: int) -> tuple[str, str]:
    """Train/eval TFRecords of `row(i, label) -> {column: [values]}` (3 classes) and their schema.

    An empty value list is what CsvExampleGen writes for an empty cell.
    """
    rng = np.random.default_rng(0)
    uri = tmp_path / "tabular"
    lists = {schema_pb2.FLOAT: tf.train.FloatList, schema_pb2.INT: tf.train.Int64List, schema_pb2.BYTES: tf.train.BytesList}
    for split, count in (("train", rows), ("eval", rows // 4)):
        (uri / f"Split-{split}").mkdir(parents=True)
        with tf.io.TFRecordWriter(str(uri / f"Split-{split}" / "data.gz"), "GZIP") as writer:
            for i in range(count):
                values = row(i, int(rng.integers(0, 3)), rng)
                feature = {name: tf.train.Feature(**{_KINDS[kind]: lists[kind](value=values[name])}) for name, kind in columns.items()}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    schema = schema_pb2.Schema()
    for name, kind in columns.items():
        schema.feature.add(name=name, type=kind)
    schema_file = str(tmp_path / "schema.pbtxt")
    io_utils.write_pbtxt_file(schema_file, schema)
    return str(uri), schema_file


def _write_tabular(tmp_path: Path, rows: int = 80) -> tuple[str, str]:
    columns = {"width": schema_pb2.FLOAT, "count": schema_pb2.INT, "note": schema_pb2.BYTES, "label": schema_pb2.INT}
    return _write_columns(tmp_path, columns, lambda i, label, rng: {
        "width": [label * 10 + rng.normal()], "count": [label * 5], "note": [b"x"], "label": [label],
    }, rows)


def test_tabular_run_fn_exports_raw_feature_and_example_signatures(tmp_path: Path) -> None:
    uri, schema_file = _write_tabular(tmp_path)
    settings = model.TrainerSettings(task=settings_module.TABULAR_TASK, epochs=30, batch_size=16, learning_rate=0.02, patience=30)
    model.run_fn(_fn_args(tmp_path, uri, settings, schema_file))
    export = str(tmp_path / "serving_model")
    defs = _signature_defs(export)
    assert set(defs[signatures.SERVING_DEFAULT].inputs) == {"count", "note", "width"}
    assert defs[signatures.EXAMPLES_SIGNATURE].method_name == signatures.CLASSIFY_METHOD_NAME
    loaded = tf.saved_model.load(export)
    result = loaded.signatures[signatures.SERVING_DEFAULT](
        width=tf.constant([0.0, 20.0]), count=tf.constant([0.0, 10.0]), note=tf.constant(["x", "x"])
    )
    assert result["class_name"].numpy().tolist() == [b"0", b"2"]
    example = tf.train.Example(features=tf.train.Features(feature={
        "width": tf.train.Feature(float_list=tf.train.FloatList(value=[10.0])),
        "count": tf.train.Feature(int64_list=tf.train.Int64List(value=[5])),
        "note": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"])),
    }))
    classified = loaded.signatures[signatures.EXAMPLES_SIGNATURE](inputs=tf.constant([example.SerializeToString()]))
    assert classified["classes"].numpy().tolist() == [[b"0", b"1", b"2"]]
    assert int(np.argmax(classified["scores"].numpy()[0])) == 1


def test_tabular_columns_take_int_or_string_labels_and_refuse_decimals(tmp_path: Path) -> None:
    schema = schema_pb2.Schema()
    schema.feature.add(name="x", type=schema_pb2.FLOAT)
    schema.feature.add(name="species", type=schema_pb2.BYTES)
    path = str(tmp_path / "schema.pbtxt")
    io_utils.write_pbtxt_file(path, schema)
    with pytest.raises(model.TrainingDataError, match=r"no label column 'label' \(columns: species, x\)"):
        model.tabular_columns(path, "label")
    assert model.tabular_columns(path, "species") == ({"x": tf.float32}, tf.string)
    with pytest.raises(model.TrainingDataError, match="label column 'x' holds decimal numbers"):
        model.tabular_columns(path, "x")


def test_label_names_from_values() -> None:
    assert model.label_names({b"virginica", b"setosa"}, "species") == ["setosa", "virginica"]
    assert model.label_names({0.0, 2.0}, "label") == ["0", "1", "2"]
    with pytest.raises(model.TrainingDataError, match="label column 'label' has negative value -1: expected class ids"):
        model.label_names({-1.0, 1.0}, "label")
    with pytest.raises(model.TrainingDataError, match="has 1 class"):
        model.label_names({b"setosa"}, "species")


def _write_messy(tmp_path: Path) -> tuple[str, str]:
    """Odd names, empty cells, a string column and a string label."""
    columns = {"sepal length (cm)": schema_pb2.FLOAT, "Colour name": schema_pb2.BYTES, "species": schema_pb2.BYTES}
    return _write_columns(tmp_path, columns, lambda i, label, rng: {
        "sepal length (cm)": [] if i % 7 == 0 else [label * 3 + rng.normal() * 0.3],
        "Colour name": [] if i % 5 == 0 else [["red", "green", "blue"][label].encode()],
        "species": [["setosa", "versicolor", "virginica"][label].encode()],
    }, 120)


def test_tabular_run_fn_on_messy_columns_serves_the_label_names(tmp_path: Path) -> None:
    uri, schema_file = _write_messy(tmp_path)
    settings = model.TrainerSettings(
        task=settings_module.TABULAR_TASK, label_key="species", epochs=25, batch_size=16, learning_rate=0.02, patience=25
    )
    model.run_fn(_fn_args(tmp_path, uri, settings, schema_file))
    export = str(tmp_path / "serving_model")
    assert (Path(export) / "assets" / features.CLASS_NAMES_FILE).read_text().split() == ["setosa", "versicolor", "virginica"]
    assert set(_signature_defs(export)[signatures.SERVING_DEFAULT].inputs) == {"sepal_length_cm", "Colour_name"}
    loaded = tf.saved_model.load(export)
    served = loaded.signatures[signatures.SERVING_DEFAULT](
        sepal_length_cm=tf.constant([0.0, 6.0, float("nan")]), Colour_name=tf.constant(["red", "blue", "green"])
    )
    # An empty cell (NaN / "") still gets an answer: the colour alone names the class.
    assert served["class_name"].numpy().tolist() == [b"setosa", b"virginica", b"versicolor"]
    missing = tf.train.Example(features=tf.train.Features(feature={
        "sepal length (cm)": tf.train.Feature(float_list=tf.train.FloatList(value=[])),
        "Colour name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"blue"])),
    }))
    classified = loaded.signatures[signatures.EXAMPLES_SIGNATURE](inputs=tf.constant([missing.SerializeToString()]))
    assert classified["classes"].numpy().tolist() == [[b"setosa", b"versicolor", b"virginica"]]
    assert int(np.argmax(classified["scores"].numpy()[0])) == 2
