"""A tabular model as TFX's penguin tutorial writes it, on a CSV of scikit-learn's bundled wine data.

One Keras input per column (the column names have dots, slashes and such: Keras and the
serving signature use `features.input_key(name)`), normalisation adapted on the training batches,
two hidden layers, logits out. The label column holds class names (strings): the model learns
their index in CLASS_NAMES and the export serves the names. Make the CSV, then run:

    .venv/bin/python examples/make_csv.py runs/wine.csv
    bin/run --data csv:runs/wine.csv --module-file examples/wine_csv_dense.py --train-steps 200
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from components.trainer import features, inputs
from components.trainer.signatures import export_serving_model

LABEL_KEY = "label"
CLASS_NAMES = ["class_0", "class_1", "class_2"]


def build_model(columns, train: tf.data.Dataset) -> keras.Model:
    keys = [features.input_key(name) for name in columns]
    model_inputs = [keras.Input(shape=(1,), name=key) for key in keys]
    x = keras.layers.Concatenate()(model_inputs)
    normalize = keras.layers.Normalization()
    normalize.adapt(train.take(20).map(lambda cols, _: tf.concat([cols[key] for key in keys], axis=-1)))
    x = normalize(x)
    for _ in range(2):
        x = keras.layers.Dense(8, activation="relu")(x)
    model = keras.Model(model_inputs, keras.layers.Dense(len(CLASS_NAMES))(x))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def run_fn(fn_args) -> None:
    schema = features.read_schema(fn_args.schema_path)
    columns = [name for name in features.schema_columns(schema) if name != LABEL_KEY]
    label_ids = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(CLASS_NAMES, tf.range(len(CLASS_NAMES), dtype=tf.int64)), -1
    )

    def model_input(batch):
        return {features.input_key(name): tf.cast(batch[name], tf.float32) for name in columns}

    def dataset(files):
        data = inputs.batches(fn_args, files, batch_size=16, label_key=LABEL_KEY)
        return data.map(lambda batch, label: (model_input(batch), label_ids.lookup(tf.reshape(label, [-1]))))

    train = dataset(fn_args.train_files)
    model = build_model(columns, train)
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps or 200,
        validation_data=dataset(fn_args.eval_files),
        validation_steps=fn_args.eval_steps or 5,
        epochs=(fn_args.custom_config or {}).get("epochs", 1),
        verbose=0,
    )
    export_serving_model(model, fn_args, class_names=CLASS_NAMES, label_key=LABEL_KEY)
