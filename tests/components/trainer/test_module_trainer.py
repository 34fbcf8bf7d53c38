"""Trainer modules: the up-front module-file check, the component, and the executor on bad modules."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, channel_utils, standard_artifacts
from tfx.utils import proto_utils

from components.trainer import executor, export, module_file
from components.trainer.component import Trainer

# A run_fn that records what TFX handed it and saves a tiny SavedModel with serving_default.
_RECORDING_MODULE = '''
import json, os
import tensorflow as tf

def run_fn(fn_args):
    with open(os.path.join(os.path.dirname(fn_args.serving_model_dir), "..", "seen.json"), "w") as f:
        json.dump({"train_files": fn_args.train_files, "eval_files": fn_args.eval_files,
                   "train_steps": fn_args.train_steps, "eval_steps": fn_args.eval_steps,
                   "custom_config": fn_args.custom_config, "has_data_accessor": fn_args.data_accessor is not None}, f)
    print("chatter that must not reach the terminal")

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": 2 * x}

    module = Doubler()
    tf.saved_model.save(module, fn_args.serving_model_dir, signatures={"serving_default": module.serve})
'''

_BAD_MODULES = {
    "raises": ("def run_fn(fn_args):\n    raise KeyError('species')\n",
               r"module file .*raises\.py: run_fn raised KeyError: 'species'"),
    "saves_nothing": ("def run_fn(fn_args):\n    pass\n",
                      r"module file .*saves_nothing\.py: run_fn returned without saving a model: expected a SavedModel in fn_args\.serving_model_dir"),
    "saves_h5": ("import os\ndef run_fn(fn_args):\n    os.makedirs(fn_args.serving_model_dir)\n"
                 "    open(os.path.join(fn_args.serving_model_dir, 'model.h5'), 'wb').write(b'HDF')\n",
                 r"module file .*saves_h5\.py: run_fn saved model\.h5 in fn_args\.serving_model_dir, which is not a SavedModel: expected saved_model\.pb"),
    "no_signature": ("import tensorflow as tf\ndef run_fn(fn_args):\n    tf.saved_model.save(tf.Module(), fn_args.serving_model_dir)\n",
                     r"module file .*no_signature\.py: the SavedModel has no 'serving_default' signature \(it has: none\)"),
    "import_fails": ("import no_such_package_xyz\ndef run_fn(fn_args):\n    pass\n",
                     r"module file .*import_fails\.py cannot be imported: ModuleNotFoundError: No module named 'no_such_package_xyz'"),
}


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


# --- the up-front check ----------------------------------------------------------------------


def test_a_module_with_run_fn_passes_and_comes_back_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "mine", "import os\n\ndef run_fn(fn_args):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    assert module_file.check_module_file("mine.py") == str(tmp_path / "mine.py")


@pytest.mark.parametrize("source", [
    "from elsewhere import run_fn\n",
    "def _train(fn_args):\n    pass\nrun_fn = _train\n",
    "try:\n    from fast import run_fn\nexcept ImportError:\n    def run_fn(fn_args):\n        pass\n",
])
def test_run_fn_may_be_imported_or_assigned(tmp_path: Path, source: str) -> None:
    assert module_file.check_module_file(str(_write(tmp_path, "mod", source)))


def test_missing_file_names_it_and_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(module_file.ModuleFileError, match=r"module file .*nope\.py does not exist: expected a Python file defining a top-level run_fn\(fn_args\)"):
        module_file.check_module_file(str(tmp_path / "nope.py"))


def test_no_run_fn_lists_what_the_module_defines(tmp_path: Path) -> None:
    path = _write(tmp_path, "trainer", "def trainer_fn(args):\n    pass\n\ndef _input_fn():\n    pass\n")
    with pytest.raises(module_file.ModuleFileError, match=r"trainer\.py has no run_fn \(it defines _input_fn, trainer_fn\): expected"):
        module_file.check_module_file(str(path))


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken", "def run_fn(fn_args):\n    return (\n")
    with pytest.raises(module_file.ModuleFileError, match=r"broken\.py does not parse: line \d+"):
        module_file.check_module_file(str(path))


@pytest.mark.parametrize("name, message", [
    ("module.txt", "is not a .py file"),
    ("my-module.py", "is not a Python module name"),
])
def test_names_tfx_cannot_import_are_refused(tmp_path: Path, name: str, message: str) -> None:
    (tmp_path / name).write_text("def run_fn(fn_args):\n    pass\n")
    with pytest.raises(module_file.ModuleFileError, match=message):
        module_file.check_module_file(str(tmp_path / name))


def test_uris_are_left_for_tfx_to_copy() -> None:
    assert module_file.check_module_file("gs://bucket/modules/mine.py") == "gs://bucket/modules/mine.py"


def test_builtin_module_is_recognised_by_path() -> None:
    assert module_file.is_builtin("") and module_file.is_builtin(module_file.BUILTIN_MODULE_FILE)
    assert not module_file.is_builtin("tests/testdata/penguin_simple/penguin_simple.py")
    # The built-in module file is itself a valid Trainer module.
    assert module_file.check_module_file(module_file.BUILTIN_MODULE_FILE) == module_file.BUILTIN_MODULE_FILE


# --- the component ---------------------------------------------------------------------------


def test_component_keeps_tfx_trainer_properties_and_packages_the_module(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine", "def run_fn(fn_args):\n    pass\n")
    examples = channel_utils.as_channel([standard_artifacts.Examples()])
    trainer = Trainer(examples=examples, module_file=str(path), custom_config={"units": 4},
                      train_args=trainer_pb2.TrainArgs(num_steps=7))
    props = trainer.exec_properties
    assert (props["module_file"], props["module_source"], props["run_fn"]) == (str(path), str(path), None)
    assert json.loads(props["custom_config"]) == {"units": 4}
    assert json.loads(props["train_args"]) == {"num_steps": 7}
    assert set(trainer.outputs) == {"model", "model_run"}
    # TFX's user-module packaging is registered: resolving it builds the wheel under the root.
    trainer._resolve_pip_dependencies(str(tmp_path / "root"))  # pylint: disable=protected-access
    module_path = trainer.exec_properties["module_path"]
    name, wheel = module_path.split("@")
    assert name == "mine" and Path(wheel).parent == tmp_path / "root" / "_wheels" and Path(wheel).is_file()
    assert trainer.exec_properties["module_file"] is None


def test_component_takes_exactly_one_of_module_file_and_run_fn() -> None:
    examples = channel_utils.as_channel([standard_artifacts.Examples()])
    with pytest.raises(ValueError, match="exactly one of module_file and run_fn"):
        Trainer(examples=examples)
    with pytest.raises(ValueError, match="exactly one of module_file and run_fn"):
        Trainer(examples=examples, module_file="a.py", run_fn="a.run_fn")


# --- the executor ----------------------------------------------------------------------------


def _do(tmp_path: Path, path: Path, **props) -> tuple[standard_artifacts.Model, standard_artifacts.ModelRun]:
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "out" / "model")
    model_run = standard_artifacts.ModelRun()
    model_run.uri = str(tmp_path / "out" / "model_run")
    Path(model.uri).mkdir(parents=True)
    Path(model_run.uri).mkdir(parents=True)
    exec_properties = {
        "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(num_steps=props.pop("train_steps", 3))),
        "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(num_steps=2)),
        "module_file": str(path),
        "module_source": str(path),
        "custom_config": json.dumps(props.pop("custom_config", None)),
    }
    executor.Executor().Do({"examples": [examples]}, {"model": [model], "model_run": [model_run]}, exec_properties)
    return model, model_run


def test_executor_gives_run_fn_tfx_fn_args_and_keeps_its_prints_out_of_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "recording", _RECORDING_MODULE)
    model, model_run = _do(tmp_path, path, train_steps=11, custom_config={"units": 4})
    seen = json.loads((tmp_path / "out" / "seen.json").read_text())
    assert seen == {
        "train_files": [str(tmp_path / "examples" / "Split-train" / "*")],
        "eval_files": [str(tmp_path / "examples" / "Split-eval" / "*")],
        "train_steps": 11, "eval_steps": 2, "custom_config": {"units": 4}, "has_data_accessor": True,
    }
    assert (Path(model.uri) / "Format-Serving" / "saved_model.pb").is_file()
    assert "chatter" not in capfd.readouterr().out
    assert "chatter" in (Path(model_run.uri) / executor.OUTPUT_FILE).read_text()


@pytest.mark.parametrize("name", sorted(_BAD_MODULES))
def test_executor_names_the_module_and_what_was_expected(tmp_path: Path, name: str) -> None:
    source, message = _BAD_MODULES[name]
    path = _write(tmp_path, name, source)
    with pytest.raises((executor.ModuleRunError, export.ExportError), match=message) as caught:
        _do(tmp_path, path)
    assert "\n" not in str(caught.value)


def test_module_source_falls_back_to_tfx_properties() -> None:
    assert executor.module_source({"run_fn": "pkg.mod.run_fn"}) == "run_fn pkg.mod.run_fn"
    assert executor.module_source({"module_source": "/m/x.py", "module_path": "x@/w.whl"}) == "module file /m/x.py"
    assert executor.module_source({"module_path": "x@/w.whl"}) == "module x@/w.whl"
