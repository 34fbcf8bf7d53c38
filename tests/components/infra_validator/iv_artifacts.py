"""Real TFX artifacts in tmp_path for InfraValidator executor tests, and running Do()."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from tfx.dsl.components.base import base_executor
from tfx.proto import infra_validator_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import proto_utils

from components.infra_validator import executor as executor_lib
from components.infra_validator import local_serving_spec


def model_artifact(root: Path, build: Callable[[Path], Path]) -> standard_artifacts.Model:
    """A Model artifact whose SavedModel sits where the Trainer writes it (`<uri>/Format-Serving`)."""
    model = standard_artifacts.Model()
    model.uri = str(root / "model")
    build(Path(model.uri) / "Format-Serving")
    return model


def examples_artifact(root: Path, rows: Sequence[Sequence[float]], label: int = 1) -> standard_artifacts.Examples:
    """An ExampleGen-style Examples artifact: gzipped TFRecords of tf.Examples with float feature `x`."""
    import tensorflow as tf

    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        directory = Path(examples.uri) / f"Split-{split}"
        directory.mkdir(parents=True)
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        with tf.io.TFRecordWriter(str(directory / "data_tfrecord-00000-of-00001.gz"), options) as writer:
            for row in rows:
                example = tf.train.Example()
                example.features.feature["x"].float_list.value.extend(row)
                example.features.feature["label"].int64_list.value.append(label)
                writer.write(example.SerializeToString())
    return examples


def run_infra_validator(
    root: Path,
    model: standard_artifacts.Model,
    examples: standard_artifacts.Examples | None,
    *,
    signature_names: Sequence[str] = (),
    num_examples: int = 2,
    make_warmup: bool = True,
    num_tries: int = 2,
    max_loading_time_seconds: int = 90,
) -> standard_artifacts.InfraBlessing:
    """Runs the executor's Do() on real artifacts with the embedded server; returns the blessing."""
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(root / "blessing")
    Path(blessing.uri).mkdir(parents=True)
    exec_properties = {
        "serving_spec": proto_utils.proto_to_json(local_serving_spec()),
        "validation_spec": proto_utils.proto_to_json(
            infra_validator_pb2.ValidationSpec(
                max_loading_time_seconds=max_loading_time_seconds, num_tries=num_tries
            )
        ),
        "local_server": "embedded",
    }
    input_dict = {"model": [model]}
    if examples is not None:
        input_dict["examples"] = [examples]
        exec_properties["request_spec"] = proto_utils.proto_to_json(
            infra_validator_pb2.RequestSpec(
                tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(
                    signature_names=list(signature_names)
                ),
                split_name="eval",
                num_examples=num_examples,
                make_warmup=make_warmup,
            )
        )
    context = base_executor.BaseExecutor.Context(tmp_dir=str(root / "tmp"), unique_id="1")
    executor_lib.Executor(context).Do(input_dict, {"blessing": [blessing]}, exec_properties)
    return blessing
