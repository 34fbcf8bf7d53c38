"""Keep TF's autograph from converting tf_keras itself while a Trainer module trains."""

from __future__ import annotations


def skip_autograph_for_tf_keras() -> None:
    """Treat tf_keras like `keras` in TF's autograph rules (idempotent, process-wide).

    TF 2.16 lists `keras` as DoNotConvert but not the `tf_keras` package, so the first fit()
    autograph-converts thousands of tf_keras functions (most of a small model's training CPU).
    tf_keras is the Keras 2 code base, written to run unconverted exactly as `keras` does. A
    module's own functions (a custom train_step, a tf.function in run_fn) are still converted.
    """
    from tensorflow.python.autograph.core import config as autograph_config

    rules = autograph_config.CONVERSION_RULES
    if not any(isinstance(rule, autograph_config.DoNotConvert) and rule._prefix == "tf_keras" for rule in rules):  # noqa: SLF001 - autograph has no public getter
        autograph_config.CONVERSION_RULES = (autograph_config.DoNotConvert("tf_keras"),) + tuple(rules)
