"""The Trainer keeps autograph away from tf_keras, and only from tf_keras."""

from __future__ import annotations

import tensorflow as tf
import tf_keras
from tensorflow.python.autograph.core import config as autograph_config
from tensorflow.python.autograph.impl import conversion

from components.trainer.autograph import skip_autograph_for_tf_keras


def _tf_keras_rules() -> list:
    return [rule for rule in autograph_config.CONVERSION_RULES
            if isinstance(rule, autograph_config.DoNotConvert) and rule._prefix == "tf_keras"]  # noqa: SLF001


def test_tf_keras_is_left_unconverted_once_however_often_it_is_asked():
    skip_autograph_for_tf_keras()
    skip_autograph_for_tf_keras()
    assert len(_tf_keras_rules()) == 1
    assert conversion.is_allowlisted(tf_keras.Model.train_step)


def test_a_modules_own_functions_are_still_converted():
    skip_autograph_for_tf_keras()

    @tf.function
    def clipped(x):
        # Python control flow on a tensor works only if autograph converts this function.
        if tf.reduce_sum(x) > 0:
            return x
        return -x

    assert not conversion.is_allowlisted(clipped.python_function)
    assert clipped(tf.constant([-1.0, -2.0])).numpy().tolist() == [1.0, 2.0]
    assert clipped(tf.constant([1.0, 2.0])).numpy().tolist() == [1.0, 2.0]
