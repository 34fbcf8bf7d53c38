"""Runs a compiled Kubeflow PipelineJob's tasks in Docker, one container per task, as KFP does.

kfp 2.5's local runner (`kfp.local`) runs single components without input artifacts, so it cannot
run this pipeline's tasks (all but ExampleGen take artifacts). This harness plays KFP's driver and
launcher instead: it orders the DAG's tasks, builds each task's ExecutorInput from the compiled
spec (constant parameters, upstream tasks' output artifacts with the metadata their executors
reported, output URIs under the pipeline root), resolves the container's placeholders with kfp's
own `kfp.local.placeholder_utils`, and runs the task's image with the spec's command and arguments
(the command replaces the image's entrypoint, as in a Kubernetes pod). The pipeline root is a
host directory mounted at the same path in every container, standing in for the bucket.

Resolver tasks (the latest blessed model) are queries KFP's driver runs against its ML Metadata;
there is none here, so they resolve to nothing, as on a first run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from google.protobuf import json_format
from kfp.local import executor_input_utils, placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2

from container_helpers import LABEL, docker


@dataclass
class TaskRun:
    """What one task did: its kind, exit status, time, logs and output artifacts (RuntimeArtifact dicts)."""

    name: str
    kind: str  # "container" or "resolver"
    exit_code: int = 0
    seconds: float = 0.0
    logs: str = ""
    outputs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def task_order(spec: dict[str, Any]) -> list[str]:
    """The root DAG's tasks, each after every task it depends on (ties in name order)."""
    tasks = spec["root"]["dag"]["tasks"]
    needs = {
        name: set(task.get("dependentTasks", []))
        | {a["taskOutputArtifact"]["producerTask"] for a in task.get("inputs", {}).get("artifacts", {}).values()}
        for name, task in tasks.items()
    }
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(name for name in tasks if name not in order and needs[name] <= set(order))
        if not ready:
            raise ValueError(f"cycle among tasks {sorted(set(tasks) - set(order))}")
        order.append(ready[0])
    return order


def executor_input(
    spec: dict[str, Any], task_name: str, task_root: Path, produced: dict[str, TaskRun]
) -> tuple[pipeline_spec_pb2.ExecutorInput, pipeline_spec_pb2.ComponentSpec]:
    """The ExecutorInput KFP's driver would give `task_name`, and its component's spec."""
    task = spec["root"]["dag"]["tasks"][task_name]
    component = spec["components"][task["componentRef"]["name"]]
    inputs = task.get("inputs", {})
    artifacts = {}
    for key, source in inputs.get("artifacts", {}).items():
        producer = source["taskOutputArtifact"]
        artifacts[key] = {"artifacts": produced[producer["producerTask"]].outputs[producer["outputArtifactKey"]]}
    parameters = {}
    for key, value in inputs.get("parameters", {}).items():
        if "constantValue" not in value.get("runtimeValue", {}):
            raise ValueError(f"task {task_name}: parameter {key} is not a constant: {value}")
        parameters[key] = value["runtimeValue"]["constantValue"]
    outputs = {
        key: {"artifacts": [{
            "name": f"{task_name}.{key}",
            "type": definition["artifactType"],
            "uri": str(task_root / key),
        }]}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    message = json_format.ParseDict(
        {
            "inputs": {"parameters": parameters, "artifacts": artifacts},
            "outputs": {"artifacts": outputs, "outputFile": str(task_root / "executor_output.json")},
        },
        pipeline_spec_pb2.ExecutorInput(),
    )
    component_spec = json_format.ParseDict(component, pipeline_spec_pb2.ComponentSpec(), ignore_unknown_fields=True)
    return message, component_spec


def output_artifacts(message: pipeline_spec_pb2.ExecutorInput, output_file: Path) -> dict[str, list[dict[str, Any]]]:
    """The task's outputs as its downstream tasks see them: declared URIs plus reported metadata."""
    declared = json_format.MessageToDict(message.outputs)["artifacts"] if message.outputs.artifacts else {}
    reported = json.loads(output_file.read_text()).get("artifacts", {}) if output_file.exists() else {}
    result = {}
    for key, artifact_list in declared.items():
        artifacts = artifact_list["artifacts"]
        for index, artifact in enumerate(reported.get(key, {}).get("artifacts", [])):
            if index < len(artifacts):
                artifacts[index] = {**artifacts[index], **{k: v for k, v in artifact.items() if k != "name"}}
        result[key] = artifacts
    return result


def run_pipeline_job(
    job_path: Path, *, mount: Path, run_id: str = "run-1", docker_args: Sequence[str] = ()
) -> dict[str, TaskRun]:
    """Runs every task of the PipelineJob at `job_path`; stops at the first failing task.

    `mount` is the host directory holding the pipeline root (and anything else the tasks read or
    write, such as the serving directory); it is mounted at the same path in every container.
    """
    job = json.loads(job_path.read_text())
    spec = job["pipelineSpec"]
    pipeline_root = job["runtimeConfig"]["gcsOutputDirectory"]
    pipeline_name = spec["pipelineInfo"]["name"]
    runs: dict[str, TaskRun] = {}
    for name in task_order(spec):
        component = spec["components"][spec["root"]["dag"]["tasks"][name]["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        if "resolver" in executor:
            runs[name] = TaskRun(name, "resolver", outputs={
                key: [] for key in component.get("outputDefinitions", {}).get("artifacts", {})
            })
            continue
        container = executor["container"]
        task_root = Path(pipeline_root) / pipeline_name / run_id / name
        message, component_spec = executor_input(spec, name, task_root, runs)
        command = placeholder_utils.replace_placeholders(
            full_command=[*container["command"], *container.get("args", [])],
            executor_input_dict=executor_input_utils.executor_input_to_dict(message, component_spec),
            pipeline_resource_name=f"{pipeline_name}-{run_id}",
            task_resource_name=name,
            pipeline_root=pipeline_root,
        )
        started = time.monotonic()
        result = docker(
            "run", "--rm", "--label", LABEL, "-v", f"{mount}:{mount}", *docker_args,
            "--entrypoint", command[0], container["image"], *command[1:],
            check=False, timeout=1800,
        )
        run = TaskRun(name, "container", result.returncode, time.monotonic() - started, result.stdout + result.stderr)
        runs[name] = run
        if run.exit_code != 0:
            break
        run.outputs = output_artifacts(message, Path(message.outputs.output_file))
    return runs
