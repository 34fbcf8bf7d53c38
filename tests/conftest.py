"""Process-wide test settings: tf_keras everywhere and quiet TF logs, before TF is imported."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
