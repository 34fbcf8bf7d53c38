"""Bring your own model, end to end through `python -m pipeline run --module-file` (slow; still run in CI).

One pipeline root, five runs in order, on a penguin-like CSV made from scikit-learn's iris (the
tutorial's four float columns, integer `species`):
three bad modules (each stops at the Trainer, pushes nothing), then TFX's penguin tutorial module
used unchanged (named float features in, logits out), then a module whose serving_default takes
serialized tf.Examples, compared against the first as its baseline.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO / "tests" / "testdata"
TUTORIAL_MODULE = TESTDATA / "penguin_simple" / "penguin_simple.py"
EXAMPLES_MODULE = TESTDATA / "penguin_examples" / "penguin_examples.py"
FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
MODEL = "penguins"
COMPONENTS = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "Evaluator", "InfraValidator", "Pusher"]

BAD_MODULES = {
    "raises": ("def run_fn(fn_args):\n    raise ValueError('no column named species_id')\n",
               r"run_fn raised ValueError: no column named species_id"),
    "saves_nothing": ("def run_fn(fn_args):\n    print('trained, forgot to save')\n",
                      r"run_fn returned without saving a model: expected a SavedModel in fn_args\.serving_model_dir"),
    "saves_h5": ("import os\ndef run_fn(fn_args):\n    os.makedirs(fn_args.serving_model_dir)\n"
                 "    open(os.path.join(fn_args.serving_model_dir, 'model.h5'), 'wb').write(b'HDF')\n",
                 r"run_fn saved model\.h5 in fn_args\.serving_model_dir, which is not a SavedModel: expected saved_model\.pb"),
}


def _penguin_csv(path: Path) -> Path:
    from sklearn.datasets import load_iris

    iris = load_iris()
    lines = [",".join(FEATURES + ["species"])]
    lines += [",".join(f"{v:g}" for v in row) + f",{label}" for row, label in zip(iris.data, iris.target)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(root: Path, csv: Path, module: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--data", f"csv:{csv}", "--label-key", "species",
         "--model-name", MODEL, "--pipeline-root", str(root / "pipeline"), "--serving-dir", str(root / "serving"),
         "--module-file", str(module), "--train-steps", "100", "--eval-steps", "5",
         # Blessing is not under test here (150 rows, 100 steps): every model that flows through passes.
         "--accuracy-threshold", "0.4", "--max-accuracy-drop", "0.5"],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("byom")
    csv = _penguin_csv(root / "penguins.csv")
    results: dict = {"root": root}
    for name, (source, _) in BAD_MODULES.items():
        module = root / "modules" / name / f"{name}.py"
        module.parent.mkdir(parents=True)
        module.write_text(source)
        results[name] = (module, _run(root, csv, module), sorted((root / "serving").glob(f"{MODEL}/*")))
    results["metadata_after_bad"] = _model_states(root / "pipeline" / "metadata.sqlite")
    results["tutorial"] = _run(root, csv, TUTORIAL_MODULE)
    results["examples"] = _run(root, csv, EXAMPLES_MODULE)
    return results


def _model_states(metadata: Path) -> dict:
    """Trainer execution states and the states of every Model artifact, from ML Metadata."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata)
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(connection)
    trainer = [c for c in store.get_contexts_by_type("node") if c.name.endswith(".Trainer")]
    executions = store.get_executions_by_context(trainer[0].id) if trainer else []
    return {
        "trainer": [metadata_store_pb2.Execution.State.Name(e.last_known_state) for e in sorted(executions, key=lambda e: e.id)],
        "models": [metadata_store_pb2.Artifact.State.Name(a.state) for a in store.get_artifacts_by_type("Model")],
    }


def _progress(stdout: str) -> dict[str, str]:
    return {m["node"]: m["state"] for m in re.finditer(r"^\[\d+/\d+\] (?P<node>\S+)\s+(?P<state>done|cached)\s", stdout, re.M)}


def _rest_predict_matches_the_model(serving: Path, version: int, instances: list, inputs: dict, scratch: Path) -> None:
    """A model server on a copy of the pushed version answers REST predict as the SavedModel in process does."""
    import tensorflow as tf

    from serving.process import ModelServerProcess

    # The serving dir's latest version may be a later one; serve exactly this one.
    base = scratch / MODEL
    shutil.copytree(serving / MODEL / str(version), base / str(version))
    expected = tf.saved_model.load(str(base / str(version))).signatures["serving_default"](
        **{key: tf.constant(value) for key, value in inputs.items()}
    )
    (output,) = expected.values()  # both modules return a single output: TF Serving then answers without names
    with ModelServerProcess(model_name=MODEL, model_base_path=base) as server:
        server.wait_until_serving(time.time() + 120)
        url = f"{server.rest_endpoint}/v1/models/{MODEL}"
        deadline = time.time() + 60
        while time.time() < deadline:
            with contextlib.suppress(urllib.error.URLError):
                with urllib.request.urlopen(url, timeout=10) as response:
                    if [s["state"] for s in json.load(response)["model_version_status"]] == ["AVAILABLE"]:
                        break
            time.sleep(0.3)
        request = urllib.request.Request(f"{url}:predict", data=json.dumps({"instances": instances}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.load(response)["predictions"]
    np.testing.assert_allclose(np.array(predictions), output.numpy(), rtol=1e-5, atol=1e-6)
    assert np.array(predictions).shape == (len(instances), 3)


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(BAD_MODULES))
def test_a_bad_module_stops_the_run_with_one_line_naming_it_and_pushes_nothing(runs: dict, name: str) -> None:
    module, result, versions = runs[name]
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"error: Trainer failed: module file {module}: "), errors[0]
    assert re.search(BAD_MODULES[name][1], errors[0]), errors[0]
    assert "Traceback" not in result.stderr
    assert f"nothing pushed; {runs['root'] / 'serving' / MODEL} is unchanged" in result.stderr
    assert versions == []
    assert "Evaluator" not in _progress(result.stdout) and "Pusher" not in _progress(result.stdout)


@pytest.mark.e2e
def test_failed_trainer_runs_leave_ml_metadata_consistent(runs: dict) -> None:
    states = runs["metadata_after_bad"]
    # One FAILED Trainer execution per bad module, and no model artifact was ever published.
    assert states["trainer"] == ["FAILED"] * len(BAD_MODULES), states
    assert "LIVE" not in states["models"], states


@pytest.mark.e2e
def test_tfx_tutorial_module_unchanged_is_evaluated_validated_pushed_and_served(runs: dict, tmp_path: Path) -> None:
    result = runs["tutorial"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    progress = _progress(result.stdout)
    # The next run after the failures works: data components come from the cache, the rest runs.
    assert {c: progress[c] for c in ("Trainer", "Evaluator", "InfraValidator", "Pusher")} == dict.fromkeys(
        ("Trainer", "Evaluator", "InfraValidator", "Pusher"), "done"), result.stdout
    assert set(progress) >= set(COMPONENTS)
    assert re.search(r"^eval accuracy 0\.\d+ \(threshold >= 0\.4; no blessed baseline yet", result.stdout, re.M), result.stdout
    assert "model BLESSED" in result.stdout
    assert re.search(r"InfraValidator: blessed \(LOAD_AND_QUERY\) by .* \d+ request\(s\) answered", result.stdout), result.stdout
    assert f"pushed version 1 to {runs['root'] / 'serving' / MODEL / '1'}" in result.stdout
    live = re.search(rf"^live check passed: '{MODEL}' version 1\b.*$", result.stdout, re.M)
    assert live and "16/16 answers match the model" in live[0], result.stdout
    # Keras' progress bar and the module's prints stay out of the terminal.
    assert "sparse_categorical_accuracy:" not in result.stdout + result.stderr

    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    instances = [{name: [float(value)] for name, value in zip(FEATURES, row)} for row in rows]
    inputs = {name: rows[:, [i]] for i, name in enumerate(FEATURES)}
    _rest_predict_matches_the_model(runs["root"] / "serving", 1, instances, inputs, tmp_path)


@pytest.mark.e2e
def test_tf_example_signature_module_flows_through_against_the_tutorial_baseline(runs: dict, tmp_path: Path) -> None:
    import tensorflow as tf

    result = runs["examples"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^eval accuracy 0\.\d+ \(threshold >= 0\.4; baseline 0\.\d+", result.stdout, re.M), result.stdout
    assert "model BLESSED" in result.stdout
    assert f"pushed version 2 to {runs['root'] / 'serving' / MODEL / '2'}" in result.stdout
    live = re.search(rf"^live check passed: '{MODEL}' version 2\b.*$", result.stdout, re.M)
    assert live and re.search(r"16/16 answers match the model, accuracy \d\.\d+ on 16 eval samples", live[0]), result.stdout

    def example(row) -> bytes:
        feature = {name: tf.train.Feature(float_list=tf.train.FloatList(value=[v])) for name, v in zip(FEATURES, row)}
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    records = [example([5.1, 3.5, 1.4, 0.2]), example([6.7, 3.0, 5.2, 2.3])]
    instances = [{"b64": base64.b64encode(record).decode()} for record in records]
    _rest_predict_matches_the_model(runs["root"] / "serving", 2, instances, {"examples": np.array(records, dtype=object)}, tmp_path)
