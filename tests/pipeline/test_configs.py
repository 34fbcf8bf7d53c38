"""pipeline/configs.py: parsing, validation and defaults of the one config source."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline import configs


@pytest.mark.parametrize(
    "text,kind,path",
    [
        ("digits", "digits", ""),
        ("cifar10:/data/cifar-10-python.tar.gz", "cifar10", "/data/cifar-10-python.tar.gz"),
        ("fashion-mnist:/d", "fashion_mnist", "/d"),
        ("MNIST:/d", "mnist", "/d"),
        ("images:C:/pics", "images", "C:/pics"),
        ("csv: rel/x.csv ", "csv", "rel/x.csv"),
    ],
)
def test_data_source_parse(text: str, kind: str, path: str) -> None:
    source = configs.DataSource.parse(text)
    assert (source.kind, source.path) == (kind, path)


@pytest.mark.parametrize(
    "text,message",
    [
        ("svhn:/x", "unknown dataset 'svhn': expected one of digits, cifar10, mnist, fashion_mnist, images, csv"),
        ("cifar10", r"dataset 'cifar10' needs a path: --data cifar10:PATH"),
        ("digits:/x", "digits is bundled with scikit-learn and takes no path"),
    ],
)
def test_data_source_errors_name_the_value(text: str, message: str) -> None:
    with pytest.raises(configs.ConfigError, match=message):
        configs.DataSource.parse(text)


def test_defaults_follow_the_data_and_live_under_runs() -> None:
    config = configs.PipelineConfig.for_data("fashion_mnist:/d")
    assert config.model_name == "fashion_mnist"
    assert config.pipeline_name == "fashion-mnist-pipeline"
    assert config.pipeline_root == "runs/fashion-mnist-pipeline"
    assert config.serving_dir == "runs/serving"
    assert config.metadata_path == "runs/fashion-mnist-pipeline/metadata.sqlite"
    assert config.image_shape == (28, 28, 1)
    assert configs.PipelineConfig.for_data().data == configs.DataSource("digits")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.model_name = "x"  # type: ignore[misc]


def test_image_shapes() -> None:
    assert configs.PipelineConfig.for_data("digits").image_shape == (8, 8, 1)
    assert configs.PipelineConfig.for_data("cifar10:/c").image_shape == (32, 32, 3)
    assert configs.PipelineConfig.for_data("images:/p", image_size=(20, 30)).image_shape == (20, 30, 3)
    with pytest.raises(configs.ConfigError, match="csv data has no image shape"):
        configs.PipelineConfig.for_data("csv:/f.csv").image_shape


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"pipeline_name": "my_pipeline"}, r"pipeline name 'my_pipeline' is not allowed: expected \[a-z0-9\]"),
        ({"pipeline_name": "Digits"}, "pipeline name 'Digits' is not allowed"),
        ({"model_name": "../etc"}, "model name '../etc' is not allowed"),
        ({"eval_percent": 0}, r"eval percent must be in \[1, 90\]"),
        ({"image_size": (0, 4)}, "image size must be"),
        ({"serving_dir": ""}, "serving_dir must not be empty"),
    ],
)
def test_pipeline_config_rejects_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(configs.ConfigError, match=message):
        configs.PipelineConfig.for_data("digits").replace(**changes)


@pytest.mark.parametrize(
    "factory,message",
    [
        (lambda: configs.TrainingConfig(epochs=0), "epochs must be >= 1, got 0"),
        (lambda: configs.TrainingConfig(learning_rate=-1), "learning rate must be > 0"),
        (lambda: configs.TrainingConfig(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (lambda: configs.EvalConfig(accuracy_lower_bound=1.5), r"accuracy lower bound must be in \[0, 1\]"),
    ],
)
def test_hyperparameter_validation(factory, message: str) -> None:
    with pytest.raises(configs.ConfigError, match=message):
        factory()


def test_from_env_reads_only_the_given_mapping() -> None:
    config = configs.PipelineConfig.from_env(
        {"PIPELINE_DATA": "mnist:/m", "SERVING_DIR": "/srv", "MODEL_NAME": "hand", "PIPELINE_ROOT": "/root"}
    )
    assert (config.data.kind, config.serving_dir, config.model_name, config.pipeline_root) == ("mnist", "/srv", "hand", "/root")
    assert config.pipeline_name == "hand-pipeline"
    assert configs.PipelineConfig.from_env({}) == configs.PipelineConfig.for_data("digits")
