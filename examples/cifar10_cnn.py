"""Seed 001's CIFAR-10 CNN as a TFX Trainer module: two conv blocks, SGD, pixels / 255 inside the graph.

The input shape comes from the data, so the same file trains on the bundled 8x8 digits and on
`--data cifar10:PATH` (32x32x3):

    bin/run --module-file examples/cifar10_cnn.py --train-steps 100 --custom-config '{"epochs": 2}'
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from components.trainer import inputs
from components.trainer.signatures import export_serving_model


def preprocess(pixels: tf.Tensor) -> tf.Tensor:
    """The seed's `x_train / 255`, kept in the served graph so clients send raw pixels."""
    return pixels / 255.0


def build_model(shape, num_classes: int, learning_rate: float) -> keras.Model:
    model = keras.Sequential([
        keras.layers.Conv2D(32, (3, 3), activation="relu", padding="same", input_shape=shape),
        keras.layers.Conv2D(32, (3, 3), activation="relu", padding="same"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Dropout(0.2),
        keras.layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
        keras.layers.Conv2D(64, (3, 3), activation="relu", padding="same"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Dropout(0.2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    # The seed one-hot encodes the labels for categorical_crossentropy; sparse labels are the same loss.
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.1),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def run_fn(fn_args) -> None:
    config = fn_args.custom_config or {}
    shape = inputs.image_shape(fn_args)
    model = build_model(shape, len(inputs.class_names(fn_args)), config.get("learning_rate", 0.01))

    def to_model_input(columns):
        return preprocess(inputs.pixels(columns, shape))

    model.fit(
        inputs.batches(fn_args, fn_args.train_files, batch_size=32, transform=to_model_input),
        steps_per_epoch=fn_args.train_steps or 100,
        validation_data=inputs.batches(fn_args, fn_args.eval_files, batch_size=32, transform=to_model_input),
        validation_steps=fn_args.eval_steps or 10,
        epochs=config.get("epochs", 100),
        verbose=0,
    )
    export_serving_model(model, fn_args, preprocess=preprocess)
