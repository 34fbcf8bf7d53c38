"""ImageExampleGen: train/eval tf.Examples from bundled digits, CIFAR-10, (Fashion-)MNIST or a class folder.

Usage:

    example_gen = ImageExampleGen(source_kind="cifar10", source_path="/data/cifar-10-python.tar.gz")
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])

Each example holds `image` (int64 pixels 0-255, row-major H*W*C) and `label` (int64 class id);
`class_names.txt` sits beside the splits. The source is read at execution time (the bundled
digits are located inside the installed scikit-learn), so the component compiles anywhere.
"""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.example_gen import executor, spec


class ImageExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        spec.SOURCE_KIND_KEY: ExecutionParameter(type=str),
        spec.SOURCE_PATH_KEY: ExecutionParameter(type=str, optional=True),
        spec.IMAGE_HEIGHT_KEY: ExecutionParameter(type=int),
        spec.IMAGE_WIDTH_KEY: ExecutionParameter(type=int),
        spec.EVAL_PERCENT_KEY: ExecutionParameter(type=int),
        spec.FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS: dict = {}
    OUTPUTS = {spec.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}


class ImageExampleGen(base_component.BaseComponent):
    """Writes gzipped TFRecords of tf.Examples into Split-train/ and Split-eval/."""

    SPEC_CLASS = ImageExampleGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        *,
        source_kind: str,
        source_path: str = "",
        image_size: tuple[int, int] = (32, 32),
        eval_percent: int = 20,
        source_fingerprint: str = "",
    ) -> None:
        """Args:
        source_kind: digits, cifar10, mnist, fashion_mnist or images.
        source_path: file or directory for every kind but digits.
        image_size: (height, width) that `images` pictures are resized to.
        eval_percent: share of eval examples when the data has no split of its own.
        source_fingerprint: changes when the input files change, so caching sees new data.
        """
        super().__init__(
            spec=ImageExampleGenSpec(
                **{
                    spec.SOURCE_KIND_KEY: source_kind,
                    spec.SOURCE_PATH_KEY: source_path,
                    spec.IMAGE_HEIGHT_KEY: int(image_size[0]),
                    spec.IMAGE_WIDTH_KEY: int(image_size[1]),
                    spec.EVAL_PERCENT_KEY: int(eval_percent),
                    spec.FINGERPRINT_KEY: source_fingerprint,
                    spec.EXAMPLES_KEY: types.Channel(type=standard_artifacts.Examples),
                }
            )
        )
