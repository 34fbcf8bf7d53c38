"""What a Trainer module's run_fn reads: the run's image shape and class names, and batches from TFX's data accessor.

For module files (examples/): the model is built for whatever data the pipeline feeds it, so the
same module trains on the bundled 8x8 digits and on 32x32 CIFAR-10 files.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import tensorflow as tf

from components.trainer import features, signatures


def image_shape(fn_args) -> tuple[int, int, int]:
    """(H, W, C): custom_config["image_shape"], else derived from the schema's `image` feature."""
    config = dict(getattr(fn_args, "custom_config", None) or {})
    schema_path = getattr(fn_args, "schema_path", None) or getattr(fn_args, "schema_file", None)
    found = signatures.serving_inputs(
        schema_path, label_key=config.get("label_key", features.LABEL_KEY), image_shape=config.get("image_shape")
    )
    if not isinstance(found, signatures.ImageInputs):
        raise signatures.ServingContractError(
            f"the data in {schema_path} has no image feature {features.IMAGE_KEY!r}: this module trains on images"
        )
    return found.shape


def class_names(fn_args) -> list[str]:
    """custom_config["class_names"], else class_names.txt written by ImageExampleGen beside the examples."""
    config = dict(getattr(fn_args, "custom_config", None) or {})
    names = list(config.get("class_names") or features.read_class_names(fn_args.train_files) or [])
    if not names:
        raise signatures.ServingContractError(
            f"no class names: no {features.CLASS_NAMES_FILE} beside {features.examples_dir(fn_args.train_files)} "
            "and no custom_config {\"class_names\": [...]}"
        )
    return names


def batches(
    fn_args,
    files: Sequence[str],
    *,
    batch_size: int,
    label_key: str = features.LABEL_KEY,
    transform: Optional[Callable[[dict], object]] = None,
) -> tf.data.Dataset:
    """(features, label) batches repeated forever, from TFX's data accessor and the run's schema.

    `transform` maps the feature dict to the model's input; pair it with fit(steps_per_epoch=...).
    """
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils
    from tfx_bsl.public import tfxio

    schema = io_utils.parse_pbtxt_file(fn_args.schema_path or fn_args.schema_file, schema_pb2.Schema())
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_key)
    dataset = fn_args.data_accessor.tf_dataset_factory(list(files), options, schema)
    return dataset.map(lambda columns, label: (transform(columns), label)) if transform else dataset


def pixels(columns: dict, shape: Sequence[int]) -> tf.Tensor:
    """float32 [N, H, W, C] raw pixels 0-255 from the accessor's flat int `image` feature."""
    return tf.reshape(tf.cast(columns[features.IMAGE_KEY], tf.float32), [-1, *shape])
