"""ImageExampleGen executor: validate the properties, read with logic.py, write TFRecords, record."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components.example_gen import logic, spec
from components.trainer import features

logger = logging.getLogger(__name__)

def to_tf_example(pixels, label: int) -> bytes:
    """Serialized tf.Example with `image` (int64 pixels, row-major HWC) and `label`."""
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                features.IMAGE_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=pixels.reshape(-1).tolist())),
                features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
        )
    )
    return example.SerializeToString()


def write_dataset(dataset: logic.ImageDataset, output_uri: str) -> dict[str, int]:
    """Writes Split-<name>/data_tfrecord-00000-of-00001.gz per split and class_names.txt; returns counts."""
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writers = {}
    counts = {split: 0 for split in logic.SPLITS}
    try:
        for split in logic.SPLITS:
            split_dir = os.path.join(output_uri, f"Split-{split}")
            tf.io.gfile.makedirs(split_dir)
            writers[split] = tf.io.TFRecordWriter(os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz"), options)
        for split, pixels, label in dataset.records():
            if pixels.shape != dataset.shape:
                raise logic.DataSourceError(f"example of shape {pixels.shape} in a dataset of shape {dataset.shape}")
            writers[split].write(to_tf_example(pixels, label))
            counts[split] += 1
    finally:
        for writer in writers.values():
            writer.close()
    empty = [split for split, count in counts.items() if count == 0]
    if empty:
        raise logic.DataSourceError(
            f"the {' and '.join(empty)} split(s) came out empty ({counts}); expected examples in both "
            "(add more images, or raise --eval-percent for tiny folders)"
        )
    with tf.io.gfile.GFile(os.path.join(output_uri, features.CLASS_NAMES_FILE), "w") as handle:
        handle.write("".join(f"{name}\n" for name in dataset.class_names))
    return counts


class Executor(base_executor.BaseExecutor):
    """Reads the configured image source and writes train/eval tf.Examples."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        kind = exec_properties.get(spec.SOURCE_KIND_KEY) or ""
        path = exec_properties.get(spec.SOURCE_PATH_KEY) or ""
        height = int(exec_properties.get(spec.IMAGE_HEIGHT_KEY) or 0)
        width = int(exec_properties.get(spec.IMAGE_WIDTH_KEY) or 0)
        eval_percent = int(exec_properties.get(spec.EVAL_PERCENT_KEY) or 0)
        if kind not in logic.KINDS:
            raise ValueError(f"{spec.SOURCE_KIND_KEY}={kind!r}: expected one of {', '.join(logic.KINDS)}")
        if kind != "digits" and not path:
            raise ValueError(f"{spec.SOURCE_PATH_KEY} is empty: the {kind} source needs a file or directory")
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, got {height}x{width}")
        if not 1 <= eval_percent <= 90:
            raise ValueError(f"{spec.EVAL_PERCENT_KEY}={eval_percent}: expected 1..90")
        examples = artifact_utils.get_single_instance(output_dict[spec.EXAMPLES_KEY])

        logic.check_source(kind, path)
        dataset = logic.load_dataset(kind, path, image_size=(height, width), eval_percent=eval_percent)
        counts = write_dataset(dataset, examples.uri)

        examples.split_names = artifact_utils.encode_split_names(list(logic.SPLITS))
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples.set_string_custom_property(spec.CLASS_NAMES_PROPERTY, json.dumps(list(dataset.class_names)))
        examples.set_string_custom_property(spec.IMAGE_SHAPE_PROPERTY, json.dumps(list(dataset.shape)))
        examples.set_string_custom_property(spec.SPLIT_COUNTS_PROPERTY, json.dumps(counts))
        logger.info("wrote %s examples of %s (%d classes) to %s", counts, kind, len(dataset.class_names), examples.uri)
