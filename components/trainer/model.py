"""Trainer module: `run_fn` for TFX's Trainer, a CNN for images and a dense net for tabular data.

The pipeline passes `TrainerSettings.to_custom_config()` as the Trainer's custom_config. The best
epoch by validation accuracy is checkpointed and restored before export; EarlyStopping ends
training when validation accuracy stops improving. Export goes through signatures.py.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import tensorflow as tf
import tf_keras as keras

from components.trainer import features, signatures
from components.trainer.settings import IMAGE_TASK, TrainerSettings

logger = logging.getLogger(__name__)

ACCURACY_METRIC = "accuracy"


class TrainingDataError(ValueError):
    """Training data that cannot train the configured model (message names what is wrong)."""


# --- data -----------------------------------------------------------------------------------


def _files(patterns: Sequence[str]) -> list[str]:
    files = sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))
    if not files:
        raise TrainingDataError(f"no example files match {list(patterns)}")
    return files


def examples_dir(file_patterns: Sequence[str]) -> str:
    """The Examples artifact directory from Trainer's `<uri>/Split-<name>/*` patterns."""
    return os.path.dirname(os.path.dirname(file_patterns[0]))


def read_class_names(file_patterns: Sequence[str]) -> list[str] | None:
    """class_names.txt written by ImageExampleGen beside the splits, or None (CsvExampleGen)."""
    path = os.path.join(examples_dir(file_patterns), features.CLASS_NAMES_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return [line.rstrip("\n") for line in handle if line.rstrip("\n")]


def image_dataset(patterns: Sequence[str], shape: Sequence[int], batch_size: int, *, shuffle: bool, seed: int) -> tf.data.Dataset:
    """(raw pixels float32 [B, H, W, C], label int64 [B]) batches."""
    spec = features.image_training_spec(shape)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        return features.pixels_from_examples(parsed, shape), parsed[features.LABEL_KEY]

    dataset = tf.data.TFRecordDataset(_files(patterns), compression_type="GZIP").cache()
    if shuffle:
        dataset = dataset.shuffle(20000, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def tabular_dataset(
    patterns: Sequence[str], feature_dtypes: Mapping[str, tf.DType], label_key: str, batch_size: int, *, shuffle: bool, seed: int
) -> tf.data.Dataset:
    """({column: float32 [B, 1]}, label int64 [B]) batches."""
    spec = features.tabular_feature_spec(feature_dtypes)
    spec[label_key] = tf.io.FixedLenFeature([], tf.int64)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        columns = {name: tf.reshape(tf.cast(parsed[name], tf.float32), [-1, 1]) for name in feature_dtypes}
        return columns, parsed[label_key]

    dataset = tf.data.TFRecordDataset(_files(patterns), compression_type="GZIP").cache()
    if shuffle:
        dataset = dataset.shuffle(20000, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(parse).prefetch(tf.data.AUTOTUNE)


def collect_labels(dataset: tf.data.Dataset) -> list[int]:
    return [int(v) for _, labels in dataset for v in labels.numpy()]


def tabular_columns(schema_file: str, label_key: str) -> dict[str, tf.DType]:
    """Numeric scalar feature columns from SchemaGen's schema; the label must be an INT column."""
    from tensorflow_metadata.proto.v0 import schema_pb2
    from google.protobuf import text_format

    schema = schema_pb2.Schema()
    with tf.io.gfile.GFile(schema_file) as handle:
        text_format.Parse(handle.read(), schema)
    by_name = {feature.name: feature for feature in schema.feature}
    if label_key not in by_name:
        raise TrainingDataError(
            f"the data has no label column {label_key!r} (columns: {', '.join(sorted(by_name))}); "
            "set the label key to the column holding integer class ids"
        )
    if by_name[label_key].type != schema_pb2.INT:
        raise TrainingDataError(
            f"label column {label_key!r} must hold integer class ids 0..K-1, "
            f"found {schema_pb2.FeatureType.Name(by_name[label_key].type)} values"
        )
    columns: dict[str, tf.DType] = {}
    for name, feature in sorted(by_name.items()):
        if name == label_key:
            continue
        if feature.type == schema_pb2.INT:
            columns[name] = tf.int64
        elif feature.type == schema_pb2.FLOAT:
            columns[name] = tf.float32
        else:
            logger.warning("ignoring non-numeric column %r (only numeric columns feed the dense net)", name)
    if not columns:
        raise TrainingDataError(f"no numeric feature columns besides the label {label_key!r}")
    return columns


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


def build_dense(columns: Sequence[str], num_classes: int, settings: TrainerSettings, train: tf.data.Dataset) -> keras.Model:
    """Normalised numeric columns (statistics adapted on the train split) into a small dense net."""
    inputs = {name: keras.Input(shape=(1,), name=name, dtype=tf.float32) for name in columns}
    x = keras.layers.Concatenate()([inputs[name] for name in columns]) if len(columns) > 1 else inputs[columns[0]]
    normalizer = keras.layers.Normalization()
    normalizer.adapt(train.map(lambda cols, _: tf.concat([cols[name] for name in columns], axis=-1)))
    x = normalizer(x)
    for units in settings.tabular_hidden_units:
        x = keras.layers.Dense(units, activation="relu")(x)
        if settings.dropout:
            x = keras.layers.Dropout(settings.dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
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
        ],
    )
    model.load_weights(checkpoint).expect_partial()
    scores = history.history[monitor]
    best_epoch = max(range(len(scores)), key=scores.__getitem__)
    result = {"epochs_run": len(scores), "best_epoch": best_epoch + 1, "best_val_accuracy": float(scores[best_epoch])}
    logger.info("training done: %s", result)
    return result


# --- entry point ----------------------------------------------------------------------------


def _skip_autograph_for_tf_keras() -> None:
    """Treat tf_keras like `keras` in TF's autograph rules (idempotent, process-wide).

    TF 2.16 lists `keras` as DoNotConvert but not the `tf_keras` package, so the first fit()
    autograph-converts thousands of tf_keras functions (most of a small model's training CPU).
    tf_keras is the Keras 2 code base, written to run unconverted exactly as `keras` does.
    """
    from tensorflow.python.autograph.core import config as autograph_config

    rules = autograph_config.CONVERSION_RULES
    if not any(isinstance(rule, autograph_config.DoNotConvert) and rule._prefix == "tf_keras" for rule in rules):  # noqa: SLF001 - autograph has no public getter
        autograph_config.CONVERSION_RULES = (autograph_config.DoNotConvert("tf_keras"),) + tuple(rules)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point (`Trainer(run_fn="components.trainer.model.run_fn")`)."""
    settings = TrainerSettings.from_custom_config(fn_args.custom_config)
    _skip_autograph_for_tf_keras()
    keras.utils.set_random_seed(settings.seed)
    work_dir = fn_args.model_run_dir or fn_args.serving_model_dir + "-work"
    if settings.task == IMAGE_TASK:
        class_names = read_class_names(fn_args.train_files)
        if not class_names:
            raise TrainingDataError(
                f"no {features.CLASS_NAMES_FILE} beside {examples_dir(fn_args.train_files)}: image examples "
                "must come from ImageExampleGen"
            )
        train = image_dataset(fn_args.train_files, settings.image_shape, settings.batch_size, shuffle=True, seed=settings.seed)
        val = image_dataset(fn_args.eval_files, settings.image_shape, settings.batch_size, shuffle=False, seed=settings.seed)
        model = build_cnn(settings.image_shape, len(class_names), settings)
        fit_best(model, train, val, settings, work_dir)
        signatures.export_image_classifier(model, fn_args.serving_model_dir, class_names, settings.image_shape)
        return

    columns = tabular_columns(fn_args.schema_file or fn_args.schema_path, settings.label_key)
    train = tabular_dataset(fn_args.train_files, columns, settings.label_key, settings.batch_size, shuffle=True, seed=settings.seed)
    val = tabular_dataset(fn_args.eval_files, columns, settings.label_key, settings.batch_size, shuffle=False, seed=settings.seed)
    labels = collect_labels(train) + collect_labels(val)
    if min(labels) < 0:
        raise TrainingDataError(f"label column {settings.label_key!r} has negative value {min(labels)}: expected class ids 0..K-1")
    class_names = [str(i) for i in range(max(labels) + 1)]
    model = build_dense(list(columns), len(class_names), settings, train)
    fit_best(model, train, val, settings, work_dir)
    signatures.export_tabular_classifier(model, fn_args.serving_model_dir, class_names, columns)
