"""The compiled Kubeflow pipeline's tasks, run in the pipeline image as Kubeflow would run them.

Every task of `python -m kubeflow compile`'s PipelineJob runs in its own container of the
pipeline image, through TFX's Kubeflow V2 container entrypoint, with the ExecutorInput built from
the compiled spec (see kfp_harness); the pipeline root and serving directory are a host directory
mounted into each container, standing in for the bucket and the models volume.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from container_helpers import PIPELINE_IMAGE
from kfp_harness import run_pipeline_job


@pytest.mark.e2e
def test_every_task_of_the_compiled_pipeline_runs_in_the_pipeline_image(tmp_path: Path) -> None:
    from components.infra_validator import make_infra_validator
    from kubeflow.compile import compile_pipeline
    from pipeline.configs import PipelineConfig, TrainingConfig

    # 3 epochs (as `--epochs 3`) still pass the Evaluator's threshold on digits, in less CI time.
    config = PipelineConfig.for_data(
        "digits", pipeline_root=str(tmp_path / "root"), serving_dir=str(tmp_path / "serving"),
        training=TrainingConfig(epochs=3),
    )
    job = compile_pipeline(
        config=config, image=PIPELINE_IMAGE, output=tmp_path / "pipeline.json", infra_validator=make_infra_validator()
    )
    tasks = json.loads(job.read_text())["pipelineSpec"]["root"]["dag"]["tasks"]

    runs = run_pipeline_job(job, mount=tmp_path)

    for run in runs.values():
        print(f"{run.name:55s} {run.kind:9s} exit {run.exit_code} {run.seconds:6.1f} s")
    failed = [run for run in runs.values() if run.exit_code != 0]
    assert not failed, f"task {failed[0].name} failed:\n{failed[0].logs[-4000:]}"
    assert sorted(runs) == sorted(tasks)
    containers = {name for name, run in runs.items() if run.kind == "container"}
    assert containers == {
        "ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "Evaluator",
        "InfraValidator", "Pusher",
    }
    # First run on a fresh root: no blessed baseline for the resolvers to find.
    assert all(artifacts == [] for run in runs.values() if run.kind == "resolver" for artifacts in run.outputs.values())

    # What the executors reported travelled downstream: splits, both blessings, the push.
    assert json.loads(runs["ExampleGen"].outputs["examples"][0]["metadata"]["split_names"]) == ["train", "eval"]
    assert runs["Evaluator"].outputs["blessing"][0]["metadata"]["blessed"] == 1
    assert runs["InfraValidator"].outputs["blessing"][0]["metadata"]["blessed"] == 1
    pushed = runs["Pusher"].outputs["pushed_model"][0]["metadata"]
    assert pushed["pushed"] == 1
    version = tmp_path / "serving" / "digits" / "1"
    assert (version / "saved_model.pb").is_file(), sorted(p.name for p in (tmp_path / "serving").rglob("*"))

    # The pushed version is a working digits model: 8x8 images in, class probabilities out.
    import tensorflow as tf

    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    probabilities = serve(image=tf.zeros([2, 8, 8, 1]))["probabilities"].numpy()
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
