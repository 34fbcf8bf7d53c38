"""The CLI: argument parsing, bad inputs refused up front, progress lines and the summary text."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import cli, configs, progress, summary

REPO = Path(__file__).resolve().parents[2]


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--pipeline-root", str(tmp_path / "root"),
         "--serving-dir", str(tmp_path / "serving"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )


def test_defaults_need_no_flag() -> None:
    args = cli.build_parser().parse_args(["run"])
    config = cli.config_from_args(args)
    assert config.data == configs.DataSource("digits")
    assert config.pipeline_root == str(Path("runs/digits-pipeline").resolve())
    assert config.serving_dir == str(Path("runs/serving").resolve())
    assert (args.runner, config.model_name, config.enable_cache) == ("beam", "digits", True)
    assert config.training == configs.TrainingConfig()


def test_flags_reach_the_config(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args([
        "run", "--data", "images:pics", "--model-name", "pets", "--epochs", "3", "--batch-size", "8",
        "--learning-rate", "0.01", "--image-size", "24x16", "--runner", "local", "--no-cache",
        "--beam-arg=--direct_running_mode=multi_processing", "--beam-arg=--direct_num_workers=2",
        "--accuracy-threshold", "0.5",
    ])
    config = cli.config_from_args(args)
    assert config.data.path == str(Path("pics").resolve())
    assert (config.model_name, config.pipeline_name, config.image_shape) == ("pets", "pets-pipeline", (24, 16, 3))
    assert (config.training.epochs, config.training.batch_size, config.training.learning_rate) == (3, 8, 0.01)
    assert config.evaluation.accuracy_lower_bound == 0.5
    assert config.enable_cache is False
    assert args.beam_arg == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def test_bad_image_size_flag() -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["run", "--image-size", "big"])


def test_source_fingerprint_changes_with_the_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"1")
    source = configs.DataSource("images", str(tmp_path))
    before = cli.source_fingerprint(source)
    assert before == cli.source_fingerprint(source)
    (tmp_path / "a" / "y.png").write_bytes(b"2")
    assert cli.source_fingerprint(source) != before


def _corrupt_folder(tmp_path: Path) -> tuple[Path, Path]:
    from PIL import Image

    root = tmp_path / "pics"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(root / name / "ok.png")
    bad = root / "b" / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root, bad


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda tmp: ("svhn:/x", None), "unknown dataset 'svhn': expected one of digits, cifar10"),
        (lambda tmp: (f"mnist:{tmp / 'missing'}", tmp / "missing"), "does not exist (needed by --data mnist:PATH)"),
        (lambda tmp: (f"cifar10:{tmp / 'nope.tar.gz'}", tmp / "nope.tar.gz"), "does not exist"),
        (lambda tmp: ("images:" + str(_corrupt_folder(tmp)[0]), _corrupt_folder_bad(tmp)), "not a readable PNG/JPEG image"),
        (lambda tmp: (f"csv:{_csv_without_label(tmp)}", tmp / "table.csv"), "no label column 'label'"),
    ],
)
def test_bad_inputs_exit_non_zero_with_one_clear_message(tmp_path: Path, make, expected: str) -> None:
    data, named_file = make(tmp_path)
    result = _run_cli(tmp_path, "--data", data)
    assert result.returncode == cli.EXIT_BAD_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    if named_file is not None:
        assert str(named_file) in lines[0]
    assert not (tmp_path / "serving").exists()
    assert "Traceback" not in result.stderr


def _corrupt_folder_bad(tmp_path: Path) -> Path:
    return tmp_path / "pics" / "b" / "bad.jpg"


def _csv_without_label(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    path.write_text("a,b,species\n1,2,0\n")
    return path


def test_progress_tracker_lines_for_beam_and_local_records() -> None:
    lines: list[str] = []
    tracker = progress.ProgressTracker(emit=lines.append, total=3)
    assert tracker.observe("node ExampleGen is running.")
    assert tracker.observe("A cached execution 12 is used.")
    assert tracker.observe("node ExampleGen is finished.")
    assert tracker.observe("Component Trainer is running.")
    assert not tracker.observe("Epoch 1/3")
    assert tracker.running() == ["Trainer"]
    assert tracker.observe("Component Trainer is finished.")
    assert lines[0].startswith("[1/3] ExampleGen") and " cached " in lines[0]
    assert lines[1].startswith("[2/3] Trainer") and " done " in lines[1] and lines[1].endswith(" s")
    assert tracker.running() == []


def test_progress_handler_hides_noise_unless_verbose() -> None:
    shown: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record.getMessage())

    lines: list[str] = []
    quiet = progress.ProgressHandler(progress.ProgressTracker(emit=lines.append), verbose=False, passthrough=Collect())
    for name, level, message in [
        ("absl", logging.INFO, "node Pusher is running."),
        ("absl", logging.WARNING, "ArtifactQuery.property_predicate is not supported."),
        ("tensorflow", logging.WARNING, "tf_record_iterator is deprecated"),
        ("pipeline.summary", logging.WARNING, "could not read the evaluation"),
        ("absl", logging.INFO, "node Pusher is finished."),
    ]:
        quiet.handle(logging.LogRecord(name, level, __file__, 1, message, None, None))
    assert shown == ["could not read the evaluation"]
    assert len(lines) == 1 and "Pusher" in lines[0]

    verbose = progress.ProgressHandler(progress.ProgressTracker(emit=lines.append), verbose=True, passthrough=Collect())
    verbose.handle(logging.LogRecord("tensorflow", logging.WARNING, __file__, 1, "tf noise", None, None))
    assert shown[-1] == "tf noise"


def test_summary_text_says_why_and_where() -> None:
    config = configs.PipelineConfig.for_data("digits", serving_dir="/srv")
    blessed = summary.RunSummary(
        executions={}, blessed=True, accuracy=0.987, baseline_accuracy=0.981,
        per_class_accuracy={"8": 0.94, "3": 0.99, "1": 1.0, "0": 1.0}, pushed=True, pushed_version="2",
        pushed_destination="/srv/digits/2",
    )
    text = summary.format_summary(blessed, config, [str(i) for i in range(10)])
    assert "eval accuracy 0.9870 (threshold >= 0.9; baseline 0.9810, allowed drop 0.010)" in text
    assert "per-class accuracy, lowest: 8 0.940, 3 0.990" in text
    assert "model BLESSED" in text and "pushed version 2 to /srv/digits/2" in text

    cached = summary.RunSummary(
        executions={}, blessed=True, accuracy=0.987, pushed=True, pushed_version="2",
        pushed_destination="/srv/digits/2", push_cached=True,
    )
    assert "nothing new to push: this model and blessing were already pushed as version 2 (/srv/digits/2)" in (
        summary.format_summary(cached, config)
    )

    refused = summary.RunSummary(
        executions={}, blessed=False, accuracy=0.5, validation_failures=["sparse_categorical_accuracy 0.5000, expected >= 0.9"],
        pushed=False,
    )
    text = summary.format_summary(refused, config)
    assert "no blessed baseline yet" in text
    assert "model NOT blessed: sparse_categorical_accuracy 0.5000, expected >= 0.9" in text
    assert "nothing pushed; /srv/digits is unchanged" in text


def test_validation_failures_are_described_with_value_and_bound() -> None:
    from tensorflow_model_analysis.proto import validation_result_pb2

    failure = validation_result_pb2.ValidationFailure()
    failure.metric_key.name = "sparse_categorical_accuracy"
    failure.metric_threshold.value_threshold.lower_bound.value = 0.9
    failure.metric_value.double_value.value = 0.875
    assert summary.describe_failure(failure) == "sparse_categorical_accuracy 0.8750, expected >= 0.9"

    change = validation_result_pb2.ValidationFailure()
    change.metric_key.name = "sparse_categorical_accuracy"
    change.metric_key.is_diff = True
    change.metric_threshold.change_threshold.absolute.value = -0.01
    change.metric_value.double_value.value = -0.05
    change.message = "worse than baseline"
    assert summary.describe_failure(change) == (
        "sparse_categorical_accuracy change vs baseline -0.0500, expected absolute change -0.01 (worse than baseline)"
    )


# --- bring your own model: TFX Trainer arguments ------------------------------------------------


def test_builtin_trainer_is_the_default_module_file() -> None:
    from components.trainer.module_file import BUILTIN_MODULE_FILE

    config = cli.config_from_args(cli.build_parser().parse_args(["run"]))
    assert config.module_file == BUILTIN_MODULE_FILE
    assert (config.train_steps, config.eval_steps, config.custom_config) == (None, None, None)


def test_module_flags_reach_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "penguin.py").write_text("def run_fn(fn_args):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args([
        "run", "--module-file", "penguin.py", "--train-steps", "100", "--eval-steps", "5",
        "--custom-config", '{"units": [8, 8], "note": "x"}',
    ])
    config = cli.config_from_args(args)
    assert config.module_file == str(tmp_path / "penguin.py")
    assert (config.train_steps, config.eval_steps) == (100, 5)
    assert config.custom_config == {"units": [8, 8], "note": "x"}


@pytest.mark.parametrize("flag, value", [
    ("--train-steps", "0"), ("--eval-steps", "many"), ("--custom-config", "[1, 2]"), ("--custom-config", "{oops"),
])
def test_bad_module_flag_values_are_refused_by_the_parser(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["run", flag, value])
    assert exit_info.value.code == cli.EXIT_BAD_INPUT
    assert f"argument {flag}: expected" in capsys.readouterr().err


def _module_without_run_fn(tmp_path: Path) -> Path:
    path = tmp_path / "trainer_module.py"
    path.write_text("def trainer_fn(args):\n    pass\n")
    return path


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda tmp: ["--module-file", str(tmp / "missing.py")], "does not exist: expected a Python file defining a top-level run_fn"),
        (lambda tmp: ["--module-file", str(_module_without_run_fn(tmp))], "has no run_fn (it defines trainer_fn): expected"),
        (lambda tmp: ["--custom-config", '{"epoch": 3}'], "custom config for the built-in trainer: unknown trainer settings ['epoch']"),
    ],
)
def test_bad_modules_are_refused_before_anything_runs(tmp_path: Path, make, expected: str) -> None:
    result = _run_cli(tmp_path, *make(tmp_path))
    assert result.returncode == cli.EXIT_BAD_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert not (tmp_path / "root").exists() and not (tmp_path / "serving").exists()


def test_run_help_shows_how_to_bring_a_model() -> None:
    text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # pylint: disable=protected-access
    for needed in ("--module-file FILE", "run_fn(fn_args)", "serving_model_dir", "--train-steps N",
                   "TrainArgs(num_steps=N)", "--eval-steps N", "--custom-config JSON", "docs/bring-your-own-model.md"):
        assert needed in " ".join(text.split()), needed
