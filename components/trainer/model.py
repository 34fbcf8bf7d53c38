"""Built-in Trainer module: `run_fn` for TFX's Trainer, a CNN for images and a dense net for CSV columns.

The pipeline passes `TrainerSettings.to_custom_config()` as the Trainer's custom_config. The best
epoch by validation accuracy is checkpointed and restored before export; EarlyStopping ends
training when validation accuracy stops improving. Export goes through signatures.export_serving_model,
the helper any module can call.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components.trainer import features, progress, signatures
from components.trainer.autograph import skip_autograph_for_tf_keras
from components.trainer.settings import IMAGE_TASK, TrainerSettings

logger = logging.getLogger(__name__)

ACCURACY_METRIC = "accuracy"
# Distinct values of a string column one-hot encoded by the dense net; rarer ones share one slot.
MAX_VOCABULARY = 100


class TrainingDataError(ValueError):
    """Training data that cannot train the configured model (message names what is wrong)."""


# --- data -----------------------------------------------------------------------------------


def _files(patterns: Sequence[str]) -> list[str]:
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise TrainingDataError(f"no example files match {list(patterns)}")
    return files


def _records(patterns: Sequence[str], *, shuffle: bool, seed: int) -> tf.data.Dataset:
    files = _files(patterns)
    # ExampleGen writes a large split as several gzip files: one reader each decompresses them in
    # parallel (in a fixed interleaved order); the serialized records are then cached in memory,
    # so later epochs neither read nor decompress.
    dataset = tf.data.TFRecordDataset(
        files, compression_type="GZIP", num_parallel_reads=len(files) if len(files) > 1 else None
    ).cache()
    if shuffle:
        dataset = dataset.shuffle(20000, seed=seed, reshuffle_each_iteration=True)
    return dataset


def _without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The dataset with tf.data's autotuning off: its AUTOTUNE settings keep tf.data's defaults, not tuned at run time.

    With it on, 7 of 11 one-epoch fits of the CIFAR CNN (12,500 images, 2 cores, quiet machine)
    ran on one core for the whole epoch (41-42 s wall for 41-43 CPU s, the other core idle);
    with it off 0 of 9 did (21-24.5 s, both cores busy). The arithmetic is the same
    (docs/pipeline.md, "The Trainer's profile")."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def image_dataset(patterns: Sequence[str], shape: Sequence[int], batch_size: int, *, shuffle: bool, seed: int) -> tf.data.Dataset:
    """(raw pixels float32 [B, H, W, C], label int64 [B]) batches."""
    spec = features.image_training_spec(shape)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        return features.pixels_from_examples(parsed, shape), parsed[features.LABEL_KEY]

    dataset = _records(patterns, shuffle=shuffle, seed=seed)
    return _without_autotune(dataset.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))


def tabular_dataset(
    patterns: Sequence[str],
    columns: Mapping[str, tf.DType],
    label_key: str,
    label_dtype: tf.DType,
    batch_size: int,
    *,
    class_names: Sequence[str] | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """({input_key(column): [B, 1]}, label [B]) batches; with class_names the label is its class id."""
    table = None
    if class_names is not None and features.is_string(label_dtype):
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(list(class_names), tf.range(len(class_names), dtype=tf.int64)), -1
        )

    def parse(serialized):
        parsed = features.parse_columns(serialized, {**columns, label_key: label_dtype})
        label = tf.reshape(parsed.pop(label_key), [-1])
        if table is not None:
            label = table.lookup(label)
        elif class_names is not None:
            label = tf.cast(label, tf.int64)
        return {features.input_key(name): value for name, value in parsed.items()}, label

    dataset = _records(patterns, shuffle=shuffle, seed=seed)
    return _without_autotune(dataset.batch(batch_size).map(parse).prefetch(tf.data.AUTOTUNE))


def tabular_columns(schema_file: str, label_key: str) -> tuple[dict[str, tf.DType], tf.DType]:
    """(feature columns, label type) from SchemaGen's schema; the label holds ints or strings."""
    by_name = features.schema_columns(features.read_schema(schema_file))
    if label_key not in by_name:
        raise TrainingDataError(
            f"the data has no label column {label_key!r} (columns: {', '.join(sorted(by_name))}); "
            "set the label key to the column holding the classes"
        )
    label_dtype = by_name.pop(label_key)
    if label_dtype == tf.float32:
        raise TrainingDataError(
            f"label column {label_key!r} holds decimal numbers: expected class ids 0..K-1 or class names"
        )
    if not by_name:
        raise TrainingDataError(f"no feature columns besides the label {label_key!r}")
    return dict(sorted(by_name.items())), label_dtype


@dataclass(frozen=True)
class ColumnStats:
    """What the dense net adapts to from the train split: numeric means/variances, vocabularies, classes."""

    means: dict[str, float]
    variances: dict[str, float]
    vocabularies: dict[str, list[str]]
    class_names: list[str]


def column_stats(
    train: tf.data.Dataset, val: tf.data.Dataset, columns: Mapping[str, tf.DType], label_key: str, max_vocabulary: int
) -> ColumnStats:
    """One pass over raw (unmapped) batches: NaN-aware moments, the most frequent strings, the labels."""
    numbers: dict[str, list[np.ndarray]] = {name: [] for name, dtype in columns.items() if not features.is_string(dtype)}
    counts: dict[str, Counter] = {name: Counter() for name, dtype in columns.items() if features.is_string(dtype)}
    labels: set = set()
    for dataset, is_train in ((train, True), (val, False)):
        for batch, label in dataset:
            labels.update(label.numpy().tolist())
            if not is_train:
                continue
            for name in numbers:
                numbers[name].append(batch[features.input_key(name)].numpy().reshape(-1))
            for name in counts:
                counts[name].update(v for v in batch[features.input_key(name)].numpy().reshape(-1).tolist() if v)
    means, variances = {}, {}
    for name, chunks in numbers.items():
        values = np.concatenate(chunks) if chunks else np.array([], np.float32)
        present = values[~np.isnan(values)]
        means[name] = float(present.mean()) if present.size else 0.0
        variances[name] = float(present.var()) if present.size > 1 and present.var() > 0 else 1.0
    vocabularies = {
        name: sorted(value.decode("utf-8", "replace") for value, _ in counter.most_common(max_vocabulary))
        for name, counter in counts.items()
    }
    return ColumnStats(means, variances, vocabularies, label_names(labels, label_key))


def label_names(values: set, label_key: str) -> list[str]:
    """Class names from the label values: sorted strings, or "0".."K-1" for integer class ids."""
    if any(isinstance(v, bytes) for v in values):
        names = sorted(v.decode("utf-8") for v in values if v)
    else:
        ids = sorted(float(v) for v in values if not np.isnan(v))
        bad = [v for v in ids if v < 0 or v != int(v)]
        if bad or not ids:
            kind = "no value" if not bad else f"negative value {bad[0]:g}" if bad[0] < 0 else f"value {bad[0]:g}"
            raise TrainingDataError(f"label column {label_key!r} has {kind}: expected class ids 0..K-1 or class names")
        names = [str(i) for i in range(int(ids[-1]) + 1)]
    if len(names) < 2:
        raise TrainingDataError(f"label column {label_key!r} has {len(names)} class(es): expected two or more")
    return names


# --- models ---------------------------------------------------------------------------------


def build_cnn(shape: Sequence[int], num_classes: int, settings: TrainerSettings) -> keras.Model:
    """Conv blocks (two 3x3 convs, pooling, dropout) as in the seeds' CIFAR-10 models; input raw pixels."""
    inputs = keras.Input(shape=tuple(shape), name=signatures.IMAGE_INPUT)
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    size = min(shape[0], shape[1])
    for filters in settings.conv_filters:
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if size >= 4:
            x = keras.layers.MaxPooling2D(2)(x)
            size //= 2
        x = keras.layers.Dropout(settings.dropout)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(settings.dense_units, activation="relu")(x)
    x = keras.layers.Dropout(settings.dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


def build_dense(columns: Mapping[str, tf.DType], stats: ColumnStats, settings: TrainerSettings) -> keras.Model:
    """A small dense net on raw columns: numbers normalised (a missing value becomes the train mean),
    strings one-hot over the train split's most frequent values (unknown and missing share a slot)."""
    inputs = {
        features.input_key(name): keras.Input(shape=(1,), name=features.input_key(name), dtype=tf.string if features.is_string(dtype) else tf.float32)
        for name, dtype in columns.items()
    }
    parts = []
    numeric = [name for name, dtype in columns.items() if not features.is_string(dtype)]
    if numeric:
        x = keras.layers.Concatenate()([inputs[features.input_key(name)] for name in numeric]) if len(numeric) > 1 else inputs[features.input_key(numeric[0])]
        x = keras.layers.Normalization(
            mean=[stats.means[name] for name in numeric], variance=[stats.variances[name] for name in numeric]
        )(x)
        # NaN (an empty cell) normalises to NaN; 0 after normalisation is the train mean.
        parts.append(keras.layers.Lambda(lambda t: tf.where(tf.math.is_nan(t), tf.zeros_like(t), t), name="fill_missing")(x))
    for name, dtype in columns.items():
        if features.is_string(dtype):
            lookup = keras.layers.StringLookup(
                vocabulary=stats.vocabularies[name] or [""], output_mode="one_hot", name=f"vocabulary_{features.input_key(name)}"
            )
            parts.append(lookup(inputs[features.input_key(name)]))
    x = keras.layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    for units in settings.tabular_hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
        if settings.dropout:
            x = keras.layers.Dropout(settings.dropout)(x)
    outputs = keras.layers.Dense(len(stats.class_names), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


def fit_best(model: keras.Model, train: tf.data.Dataset, val: tf.data.Dataset, settings: TrainerSettings, work_dir: str) -> dict[str, float]:
    """Fits with EarlyStopping, checkpoints the best validation accuracy and restores it."""
    model.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name=ACCURACY_METRIC)],
    )
    checkpoint = os.path.join(work_dir, "best_weights", "checkpoint")
    monitor = f"val_{ACCURACY_METRIC}"
    history = model.fit(
        train,
        validation_data=val,
        epochs=settings.epochs,
        verbose=0,
        callbacks=[
            keras.callbacks.ModelCheckpoint(
                checkpoint, monitor=monitor, mode="max", save_best_only=True, save_weights_only=True
            ),
            keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=settings.patience),
            # Per-epoch scalars under the ModelRun artifact: the run report draws its curves from them.
            keras.callbacks.TensorBoard(log_dir=work_dir, write_graph=False, update_freq="epoch", profile_batch=0),
            progress.epoch_callback(),
        ],
    )
    model.load_weights(checkpoint).expect_partial()
    scores = history.history[monitor]
    best_epoch = max(range(len(scores)), key=scores.__getitem__)
    result = {"epochs_run": len(scores), "best_epoch": best_epoch + 1, "best_val_accuracy": float(scores[best_epoch])}
    logger.info("training done: %s", result)
    return result


# --- entry point ----------------------------------------------------------------------------


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (`Trainer(run_fn="components.trainer.model.run_fn")`)."""
    settings = TrainerSettings.from_custom_config(fn_args.custom_config)
    skip_autograph_for_tf_keras()
    keras.utils.set_random_seed(settings.seed)
    work_dir = fn_args.model_run_dir or fn_args.serving_model_dir + "-work"
    if settings.task == IMAGE_TASK:
        class_names = features.read_class_names(fn_args.train_files)
        if not class_names:
            raise TrainingDataError(
                f"no {features.CLASS_NAMES_FILE} beside {features.examples_dir(fn_args.train_files)}: image examples "
                "must come from ImageExampleGen"
            )
        train = image_dataset(fn_args.train_files, settings.image_shape, settings.batch_size, shuffle=True, seed=settings.seed)
        val = image_dataset(fn_args.eval_files, settings.image_shape, settings.batch_size, shuffle=False, seed=settings.seed)
        model = build_cnn(settings.image_shape, len(class_names), settings)
        fit_best(model, train, val, settings, work_dir)
        signatures.export_serving_model(model, fn_args, class_names=class_names, image_shape=settings.image_shape)
        return

    columns, label_dtype = tabular_columns(fn_args.schema_file or fn_args.schema_path, settings.label_key)

    def dataset(patterns: Sequence[str], class_names=None, shuffle: bool = False) -> tf.data.Dataset:
        return tabular_dataset(
            patterns, columns, settings.label_key, label_dtype, settings.batch_size,
            class_names=class_names, shuffle=shuffle, seed=settings.seed,
        )

    stats = column_stats(dataset(fn_args.train_files), dataset(fn_args.eval_files), columns, settings.label_key, MAX_VOCABULARY)
    train = dataset(fn_args.train_files, stats.class_names, shuffle=True)
    val = dataset(fn_args.eval_files, stats.class_names)
    model = build_dense(columns, stats, settings)
    fit_best(model, train, val, settings, work_dir)
    signatures.export_serving_model(model, fn_args, class_names=stats.class_names)
