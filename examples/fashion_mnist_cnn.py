"""Seed 002's Fashion-MNIST model (TensorFlow's "train and serve" tutorial) as a TFX Trainer module.

One strided 3x3 convolution, then a dense layer that returns logits; the export helper turns them
into probabilities and serves the class names ImageExampleGen wrote (T-shirt/top ... Ankle boot
for `--data fashion_mnist:DIR`, 0..9 for the bundled digits):

    bin/run --module-file examples/fashion_mnist_cnn.py --train-steps 100 --custom-config '{"epochs": 2}'
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from components.trainer import inputs
from components.trainer.signatures import export_serving_model


def scale(pixels: tf.Tensor) -> tf.Tensor:
    return pixels / 255.0


def build_model(shape, num_classes: int) -> keras.Model:
    model = keras.Sequential([
        keras.layers.Conv2D(input_shape=shape, filters=8, kernel_size=3, strides=2, activation="relu", name="Conv1"),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, name="Dense"),
    ])
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def run_fn(fn_args) -> None:
    shape = inputs.image_shape(fn_args)
    names = inputs.class_names(fn_args)
    model = build_model(shape, len(names))
    train = inputs.batches(fn_args, fn_args.train_files, batch_size=32, transform=lambda c: scale(inputs.pixels(c, shape)))
    model.fit(
        train,
        steps_per_epoch=fn_args.train_steps or 100,
        epochs=(fn_args.custom_config or {}).get("epochs", 5),
        verbose=0,
    )
    # The model ends in a plain Dense layer: the helper sees logits and applies softmax.
    export_serving_model(model, fn_args, class_names=names, preprocess=scale)
