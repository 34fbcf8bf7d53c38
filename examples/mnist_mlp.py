"""Seed 003's MNIST multilayer perceptron as a TFX Trainer module: 784 flat pixels, two hidden layers of 256.

The seed builds it in TF1 (placeholders, `mlp()` returning logits and softmax, a classify
signature over serialized tf.Examples with classes "0".."9"). The Keras model below is the same
network; the export helper gives it that classify signature (`serving_examples`) beside the
raw-pixel `serving_default`, and feeds it flat pixels (the schema says how many: 64 for the
bundled digits, 784 for `--data mnist:DIR`):

    bin/run --module-file examples/mnist_mlp.py --train-steps 100 --custom-config '{"epochs": 2}'
"""

from __future__ import annotations

import math

import tf_keras as keras

from components.trainer import inputs
from components.trainer.signatures import export_serving_model

HIDDEN_LAYERS = (256, 256)


def build_model(num_inputs: int, num_outputs: int, learning_rate: float) -> keras.Model:
    model = keras.Sequential([keras.layers.InputLayer(input_shape=(num_inputs,), name="x")])
    for units in HIDDEN_LAYERS:
        model.add(keras.layers.Dense(units, activation="relu"))
    model.add(keras.layers.Dense(num_outputs, name="logits"))
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def run_fn(fn_args) -> None:
    config = fn_args.custom_config or {}
    shape = inputs.image_shape(fn_args)
    model = build_model(math.prod(shape), len(inputs.class_names(fn_args)), config.get("learning_rate", 0.01))

    num_inputs = math.prod(shape)
    model.fit(
        # The seed's MNIST pixels are floats in [0, 1]; ImageExampleGen stores 0-255.
        inputs.batches(fn_args, fn_args.train_files, batch_size=100, transform=lambda c: inputs.pixels(c, [num_inputs]) / 255.0),
        steps_per_epoch=fn_args.train_steps or 100,
        epochs=config.get("epochs", 50),
        verbose=0,
    )
    # Served on raw [N, H, W, C] pixels like every image model: the helper flattens them for the MLP.
    export_serving_model(model, fn_args, preprocess=lambda pixels: pixels / 255.0)
