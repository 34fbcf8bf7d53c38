"""A Trainer module with TFX's other serving convention: serving_default takes serialized tf.Examples.

Written as TFX's penguin example (penguin_utils_keras) exports: the schema from SchemaGen
(`fn_args.schema_path`), a `serve_tf_examples_fn` that parses the examples without the label and
calls the model, saved with `signatures={'serving_default': ...}`. The model returns softmax
probabilities (the tutorial module returns logits): both must flow through the pipeline.
"""

from typing import List

import tensorflow as tf
from tensorflow import keras
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

_FEATURE_KEYS = ['culmen_length_mm', 'culmen_depth_mm', 'flipper_length_mm', 'body_mass_g']
_LABEL_KEY = 'species'


def _input_fn(file_pattern: List[str], data_accessor: tfx.components.DataAccessor, schema, batch_size: int) -> tf.data.Dataset:
  return data_accessor.tf_dataset_factory(
      file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=_LABEL_KEY), schema=schema).repeat()


def _build_keras_model() -> tf.keras.Model:
  inputs = [keras.layers.Input(shape=(1,), name=f) for f in _FEATURE_KEYS]
  d = keras.layers.concatenate(inputs)
  d = keras.layers.Dense(16, activation='relu')(d)
  outputs = keras.layers.Dense(3, activation='softmax')(d)
  model = keras.Model(inputs=inputs, outputs=outputs)
  model.compile(optimizer=keras.optimizers.Adam(1e-2), loss='sparse_categorical_crossentropy',
                metrics=[keras.metrics.SparseCategoricalAccuracy()])
  return model


def _get_serve_tf_examples_fn(model, schema):
  """A function that parses serialized tf.Examples (label excluded) and applies the model."""
  feature_spec = schema_utils.schema_as_feature_spec(schema).feature_spec
  feature_spec.pop(_LABEL_KEY)

  @tf.function
  def serve_tf_examples_fn(serialized_tf_examples):
    parsed = tf.io.parse_example(serialized_tf_examples, feature_spec)
    return model({key: tf.cast(parsed[key], tf.float32) for key in _FEATURE_KEYS})

  return serve_tf_examples_fn


def run_fn(fn_args: tfx.components.FnArgs):
  schema = tfx.utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
  train = _input_fn(fn_args.train_files, fn_args.data_accessor, schema, 20)
  evaluation = _input_fn(fn_args.eval_files, fn_args.data_accessor, schema, 10)
  model = _build_keras_model()
  model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
            validation_steps=fn_args.eval_steps)
  signatures = {
      'serving_default': _get_serve_tf_examples_fn(model, schema).get_concrete_function(
          tf.TensorSpec(shape=[None], dtype=tf.string, name='examples')),
  }
  model.save(fn_args.serving_model_dir, save_format='tf', signatures=signatures)
