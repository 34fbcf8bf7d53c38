"""`python -m kubeflow compile`: the local pipeline, compiled by KubeflowV2DagRunner, as a PipelineSpec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from components.infra_validator import make_infra_validator
from kubeflow.__main__ import main
from kubeflow.compile import CompileError, compile_pipeline, validate_image, validate_pipeline_name
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline

REPO = Path(__file__).resolve().parents[2]


def parse_spec(path: Path) -> pipeline_spec_pb2.PipelineSpec:
    """The PipelineSpec inside a compiled file, parsed strictly by kfp-pipeline-spec."""
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else next(yaml.safe_load_all(text))
    spec_dict = document["pipelineSpec"] if "pipelineSpec" in document else document
    return json_format.ParseDict(spec_dict, pipeline_spec_pb2.PipelineSpec())


def executor_of(spec: pipeline_spec_pb2.PipelineSpec, task: str) -> dict:
    component = spec.components[spec.root.dag.tasks[task].component_ref.name]
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    return executors[component.executor_label]


def local_pipeline(**overrides: str) -> tfx.dsl.Pipeline:
    config = PipelineConfig.for_data(
        "digits", pipeline_root="gs://bucket/pipelines", serving_dir="gs://bucket/models", **overrides
    )
    return create_pipeline(config=config, infra_validator=make_infra_validator())


def test_every_local_component_is_a_task_running_the_image(compiled_json: Path, image: str) -> None:
    spec = parse_spec(compiled_json)
    components = local_pipeline().components

    assert spec.pipeline_info.name == "digits-pipeline"
    assert len(components) >= 8
    assert {"ExampleGen", "Trainer", "InfraValidator", "Pusher"} <= set(spec.root.dag.tasks)
    tasks = set(spec.root.dag.tasks)
    for component in components:
        if isinstance(component, tfx.dsl.Resolver):
            # KubeflowV2DagRunner splits a Resolver into one resolver task per input channel.
            resolvers = {t for t in tasks if t.startswith(f"{component.id}-")}
            assert resolvers, f"no resolver task for {component.id}"
            assert all("resolver" in executor_of(spec, t) for t in resolvers)
            tasks -= resolvers
        else:
            assert component.id in tasks, f"{component.id} is not a task"
            container = executor_of(spec, component.id)["container"]
            assert container["image"] == image
            tasks.remove(component.id)
    assert tasks == set(), f"tasks without a local component: {tasks}"


def test_every_container_executor_runs_the_image_and_project_code_is_in_it(compiled_json: Path, image: str) -> None:
    spec = parse_spec(compiled_json)
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    containers = [e["container"] for e in executors.values() if "container" in e]
    dockerfile = (REPO / "kubeflow" / "Dockerfile").read_text()

    assert {c["image"] for c in containers} == {image}
    for container in containers:
        executor_class = container["args"][container["args"].index("--executor_class_path") + 1]
        package = executor_class.split(".")[0]
        # Custom executors must be importable in the cluster: the image copies their package.
        assert package == "tfx" or f"COPY {package} {package}" in dockerfile, executor_class


def test_the_compiled_job_keeps_the_pipeline_root_and_no_local_paths(compiled_json: Path) -> None:
    job = json.loads(compiled_json.read_text())

    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/pipelines"
    assert str(REPO) not in compiled_json.read_text()


def test_cli_compiles_with_beam_args_on_the_data_components(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "with-beam.json"

    code = main([
        "compile", "--image", "ghcr.io/acme/kit:1.2.3", "--output", str(out),
        "--pipeline-root", "gs://b/root", "--serving-dir", "gs://b/models",
        "--beam-runner", "direct", "--beam-workers", "2",
    ])

    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert f"wrote {out}" in stdout
    spec = parse_spec(out)
    for task in ("StatisticsGen", "SchemaGen", "Evaluator"):
        args = executor_of(spec, task)["container"]["args"]
        assert args[-3:] == ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def test_cli_writes_a_pipeline_spec_yaml_the_kfp_ui_uploads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pipeline.yaml"

    code = main(["compile", "--image", "ghcr.io/acme/kit:1.2.3", "--output", str(out), "--pipeline-name", "nightly-digits"])

    assert code == 0, capsys.readouterr().err
    spec = parse_spec(out)
    assert spec.pipeline_info.name == "nightly-digits"
    assert {"Trainer", "InfraValidator", "Pusher"} <= set(spec.root.dag.tasks)


def test_cli_can_leave_the_infra_validator_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "p.json"

    code = main(["compile", "--image", "kit:1", "--output", str(out), "--no-infra-validator"])

    assert code == 0, capsys.readouterr().err
    tasks = set(parse_spec(out).root.dag.tasks)
    assert "InfraValidator" not in tasks and {"Evaluator", "Pusher"} <= tasks


def test_cli_default_output_is_under_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)

    code = main(["compile", "--image", "ghcr.io/acme/kit:1.2.3"])

    assert code == 0, capsys.readouterr().err
    assert parse_spec(tmp_path / "runs" / "kubeflow" / "pipeline.json").pipeline_info.name == "digits-pipeline"


def test_local_paths_are_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    config = PipelineConfig.for_data("digits", pipeline_root=str(tmp_path / "root"), serving_dir="gs://b/models")

    compile_pipeline(config=config, image="kit:1", output=tmp_path / "p.json")

    assert any("pipeline root" in r.getMessage() and "local path" in r.getMessage() for r in caplog.records)
    assert not any("serving dir" in r.getMessage() for r in caplog.records)
    assert not any("data path" in r.getMessage() for r in caplog.records)  # digits is in the image


@pytest.mark.parametrize("name", ["digits_pipeline", "Digits", "-digits", ""])
def test_pipeline_names_follow_kfp_rules(name: str) -> None:
    with pytest.raises(CompileError, match=r"expected \[a-z0-9\]\[a-z0-9-\]\*"):
        validate_pipeline_name(name)


def test_cli_rejects_an_underscore_name_in_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["compile", "--image", "kit:1", "--output", str(tmp_path / "p.json"), "--pipeline-name", "my_pipeline"])

    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "error: pipeline name 'my_pipeline' is not allowed on Kubeflow: expected [a-z0-9][a-z0-9-]* "
        "(lower case, digits and '-', starting with a letter or digit; e.g. 'my-pipeline')\n"
    )
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("image", ["kit", "kit:1", "ghcr.io/acme/kit:1.2.3", "localhost:5000/kit@sha256:" + "a" * 64])
def test_valid_images(image: str) -> None:
    assert validate_image(image) == image


@pytest.mark.parametrize("image", ["", "Kit:1", "kit:", "kit 1", "https://ghcr.io/kit"])
def test_invalid_images(image: str) -> None:
    with pytest.raises(CompileError, match="not a Docker image reference"):
        validate_image(image)


def test_bad_output_and_beam_args_fail_before_compiling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "--image", "kit:1", "--output", str(tmp_path / "p.txt")]) == 1
    assert "must end in .json, .yaml or .yml" in capsys.readouterr().err

    assert main(["compile", "--image", "kit:1", "--output", str(tmp_path / "p.json"), "--beam-arg=--direct_num_worker=2"]) == 1
    assert "unknown Beam option(s): --direct_num_worker" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_a_local_dataset_path_is_flagged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = PipelineConfig.for_data(
        f"images:{tmp_path}", pipeline_root="gs://b/root", serving_dir="gs://b/models"
    )

    compile_pipeline(config=config, image="kit:1", output=tmp_path / "p.json")

    [warning] = [r.getMessage() for r in caplog.records if "local path" in r.getMessage()]
    assert warning.startswith(f"data path '{tmp_path}' is a local path")


def _task_parameters(spec: pipeline_spec_pb2.PipelineSpec, task: str) -> dict:
    parameters = spec.root.dag.tasks[task].inputs.parameters
    # TFX's KubeflowV2DagRunner writes exec properties as constant string parameters of the task.
    return {name: value.runtime_value.constant_value.string_value for name, value in parameters.items()}


def test_a_module_file_reaches_the_cluster_as_tfx_packages_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import zipfile

    module = REPO / "tests" / "testdata" / "penguin_simple" / "penguin_simple.py"
    out, root = tmp_path / "p.json", tmp_path / "root"

    code = main(["compile", "--image", "kit:1", "--output", str(out), "--pipeline-root", str(root),
                 "--module-file", str(module), "--train-steps", "100", "--eval-steps", "5",
                 "--custom-config", '{"units": 8}'])

    assert code == 0, capsys.readouterr().err
    parameters = _task_parameters(parse_spec(out), "Trainer")
    # TFX's user-module packaging: a wheel under the pipeline root, `module_path` = "<module>@<wheel>",
    # and no local module_file left for the pod to miss.
    name, wheel = parameters["module_path"].split("@")
    assert name == "penguin_simple"
    assert Path(wheel).parent == root / "_wheels" and Path(wheel).name.startswith("tfx_user_code_Trainer-0.0+")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("penguin_simple.py") == module.read_bytes()
    assert "module_file" not in parameters and "run_fn" not in parameters
    assert json.loads(parameters["train_args"]) == {"num_steps": 100}
    assert json.loads(parameters["eval_args"]) == {"num_steps": 5}
    assert json.loads(parameters["custom_config"]) == {"units": 8}


def test_without_a_module_file_the_image_runs_the_builtin_trainer(compiled_json: Path) -> None:
    parameters = _task_parameters(parse_spec(compiled_json), "Trainer")
    assert parameters["run_fn"] == "components.trainer.model.run_fn"
    assert "module_path" not in parameters


def test_cli_refuses_a_missing_module_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compile", "--image", "kit:1", "--output", str(tmp_path / "p.json"), "--module-file", str(tmp_path / "none.py")])

    stderr = capsys.readouterr().err
    assert code == 1
    assert stderr.strip().splitlines() == [
        f"error: module file {tmp_path / 'none.py'} does not exist: expected a Python file defining a top-level "
        "run_fn(fn_args), TFX Trainer's module_file"
    ]
    assert not (tmp_path / "p.json").exists()
