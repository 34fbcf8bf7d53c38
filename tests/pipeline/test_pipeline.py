"""create_pipeline: component list, ids, wiring, the InfraValidator slot, and compiling it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tfx import v1 as tfx
from tfx.proto import infra_validator_pb2

from components.data_validation.component import StrictExampleValidator
from components.example_gen.component import ImageExampleGen
from components.pusher.component import LayoutPusher
from components.trainer.settings import TrainerSettings
from pipeline import configs
from pipeline.pipeline import TRAINER_RUN_FN, create_pipeline
from pipeline.trainer_args import trainer_settings

EXPECTED_IDS = [
    "ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer",
    "latest_blessed_model_resolver", "Evaluator", "Pusher",
]


def _config(tmp_path: Path, data: str = "digits", **overrides) -> configs.PipelineConfig:
    return configs.PipelineConfig.for_data(
        data, pipeline_root=str(tmp_path / "root"), serving_dir=str(tmp_path / "serving"), **overrides
    )


def _by_id(pipeline) -> dict:
    return {component.id: component for component in pipeline.components}


def test_components_and_ids(tmp_path: Path) -> None:
    pipeline = create_pipeline(config=_config(tmp_path))
    assert sorted(c.id for c in pipeline.components) == sorted(EXPECTED_IDS)
    components = _by_id(pipeline)
    assert isinstance(components["ExampleGen"], ImageExampleGen)
    assert isinstance(components["ExampleValidator"], StrictExampleValidator)
    assert isinstance(components["Pusher"], LayoutPusher)
    assert pipeline.pipeline_info.pipeline_name == "digits-pipeline"
    assert pipeline.enable_cache is True


def test_wiring(tmp_path: Path) -> None:
    config = _config(tmp_path, training=configs.TrainingConfig(epochs=3, batch_size=16, learning_rate=0.01))
    components = _by_id(create_pipeline(config=config, beam_pipeline_args=["--direct_num_workers=2"]))
    examples = components["ExampleGen"].outputs["examples"]
    trainer, evaluator, pusher = components["Trainer"], components["Evaluator"], components["Pusher"]
    # Anomalies must stop the run before training: the Trainer waits for the validator.
    assert components["ExampleValidator"] in trainer.upstream_nodes
    assert trainer.inputs["examples"] is examples
    assert trainer.inputs["schema"] is components["SchemaGen"].outputs["schema"]
    assert trainer.exec_properties["run_fn"] == TRAINER_RUN_FN
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert (custom["epochs"], custom["batch_size"], custom["learning_rate"], custom["image_shape"]) == (3, 16, 0.01, [8, 8, 1])
    assert evaluator.inputs["model"] is trainer.outputs["model"]
    assert evaluator.inputs["baseline_model"] is components["latest_blessed_model_resolver"].outputs["model"]
    assert pusher.inputs["model"] is trainer.outputs["model"]
    assert pusher.inputs["model_blessing"] is evaluator.outputs["blessing"]
    assert "infra_blessing" not in pusher.inputs
    assert json.loads(pusher.exec_properties["custom_config"]) == {
        "serving_dir": str(tmp_path / "serving"), "model_name": "digits"
    }


def test_digits_source_has_no_local_path_at_compile_time(tmp_path: Path) -> None:
    example_gen = _by_id(create_pipeline(config=_config(tmp_path)))["ExampleGen"]
    assert example_gen.exec_properties["source_kind"] == "digits"
    assert example_gen.exec_properties["source_path"] == ""


def test_infra_validator_slot_feeds_the_pusher(tmp_path: Path) -> None:
    made = {}

    def stock_infra_validator(model, examples):
        made["inputs"] = (model, examples)
        return tfx.components.InfraValidator(
            model=model,
            examples=examples,
            serving_spec=infra_validator_pb2.ServingSpec(
                tensorflow_serving=infra_validator_pb2.TensorFlowServing(tags=["latest"]),
                local_docker=infra_validator_pb2.LocalDockerConfig(),
            ),
            request_spec=infra_validator_pb2.RequestSpec(
                tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(signature_names=["serving_examples"])
            ),
        )

    pipeline = create_pipeline(config=_config(tmp_path), infra_validator=stock_infra_validator)
    components = _by_id(pipeline)
    assert sorted(components) == sorted(EXPECTED_IDS + ["InfraValidator"])
    infra = components["InfraValidator"]
    assert made["inputs"] == (components["Trainer"].outputs["model"], components["ExampleGen"].outputs["examples"])
    assert components["Pusher"].inputs["infra_blessing"] is infra.outputs["blessing"]
    assert infra.outputs["blessing"].type == tfx.types.standard_artifacts.InfraBlessing


def test_csv_uses_the_stock_csv_example_gen_and_a_dense_net(tmp_path: Path, iris_csv: Path) -> None:
    config = _config(tmp_path, f"csv:{iris_csv}", label_key="label", eval_percent=25)
    components = _by_id(create_pipeline(config=config))
    example_gen = components["ExampleGen"]
    assert isinstance(example_gen, tfx.components.CsvExampleGen)
    assert example_gen.exec_properties["input_base"] == str(iris_csv.parent)
    assert json.loads(example_gen.exec_properties["input_config"])["splits"][0]["pattern"] == "iris.csv"
    output_splits = json.loads(example_gen.exec_properties["output_config"])["split_config"]["splits"]
    assert [(s["name"], s["hash_buckets"]) for s in output_splits] == [("train", 75), ("eval", 25)]
    custom = json.loads(components["Trainer"].exec_properties["custom_config"])
    assert custom["task"] == "tabular"


def test_trainer_settings_carry_every_hyperparameter(tmp_path: Path) -> None:
    training = configs.TrainingConfig(epochs=7, patience=2, conv_filters=(8,), dense_units=16, dropout=0.1, seed=3)
    settings = trainer_settings(_config(tmp_path, "cifar10:/c", training=training))
    assert settings == TrainerSettings(
        task="image", image_shape=(32, 32, 3), epochs=7, batch_size=training.batch_size,
        learning_rate=training.learning_rate, patience=2, conv_filters=(8,), dense_units=16, dropout=0.1,
        tabular_hidden_units=training.tabular_hidden_units, seed=3,
    )


def test_compiles_for_kubeflow_with_every_component_as_a_task(tmp_path: Path) -> None:
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    config = configs.PipelineConfig.for_data("digits", pipeline_root="gs://bucket/root", serving_dir="/models")
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image="example.com/pipeline:1"),
        output_dir=str(tmp_path),
        output_filename="pipeline.json",
    )
    runner.run(create_pipeline(config=config))
    spec = json.loads((tmp_path / "pipeline.json").read_text())["pipelineSpec"]
    tasks = set(spec["root"]["dag"]["tasks"])
    assert {"ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "Evaluator", "Pusher"} <= tasks
    assert "ExampleValidator" in spec["root"]["dag"]["tasks"]["Trainer"].get("dependentTasks", [])
    assert "/work/" not in json.dumps(spec["deploymentSpec"])  # no local paths baked in


def test_local_runner_rejects_unknown_runner(tmp_path: Path) -> None:
    from pipeline import runners

    with pytest.raises(configs.ConfigError, match="runner 'airflow': expected one of beam, local"):
        runners.run(_config(tmp_path), runner="airflow")


# --- bring your own model --------------------------------------------------------------------


def test_a_module_file_gets_tfx_trainer_arguments_as_given(tmp_path: Path) -> None:
    from components.trainer.component import Trainer

    module = tmp_path / "penguin.py"
    module.write_text("def run_fn(fn_args):\n    pass\n")
    config = _config(tmp_path, module_file=str(module), train_steps=100, eval_steps=5, custom_config={"units": 8})
    components = _by_id(create_pipeline(config=config))
    trainer = components["Trainer"]
    assert isinstance(trainer, Trainer)
    props = trainer.exec_properties
    assert (props["module_file"], props["run_fn"]) == (str(module), None)
    assert json.loads(props["custom_config"]) == {"units": 8}  # the user's, not the built-in's settings
    assert json.loads(props["train_args"]) == {"num_steps": 100}
    assert json.loads(props["eval_args"]) == {"num_steps": 5}
    # The Evaluator decodes named-feature inputs with the schema.
    assert components["Evaluator"].inputs["schema"] is components["SchemaGen"].outputs["schema"]


def test_builtin_trainer_by_file_or_by_python_path_gets_its_settings(tmp_path: Path) -> None:
    from components.trainer.module_file import BUILTIN_MODULE_FILE

    by_file = _by_id(create_pipeline(config=_config(tmp_path, module_file=BUILTIN_MODULE_FILE, custom_config={"dense_units": 16})))
    by_path = _by_id(create_pipeline(config=_config(tmp_path)))
    assert by_file["Trainer"].exec_properties["module_file"] == BUILTIN_MODULE_FILE
    assert by_path["Trainer"].exec_properties["run_fn"] == TRAINER_RUN_FN
    settings = TrainerSettings.from_custom_config(json.loads(by_file["Trainer"].exec_properties["custom_config"]))
    assert settings.dense_units == 16 and settings.image_shape == (8, 8, 1)
    # Unset steps stay unset, as in TFX (fn_args.train_steps is None).
    assert json.loads(by_path["Trainer"].exec_properties["train_args"]) == {}


@pytest.mark.parametrize("overrides, message", [
    ({"train_steps": 0}, "train steps must be an integer >= 1"),
    ({"eval_steps": 2.5}, "eval steps must be an integer >= 1"),
    ({"custom_config": ["a"]}, "custom config must be a JSON object"),
])
def test_bad_trainer_arguments_in_the_config(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(configs.ConfigError, match=message):
        _config(tmp_path, **overrides)
