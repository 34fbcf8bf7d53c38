"""`python -m kubeflow submit`: dry run, the real kfp client against a loopback KFP, error paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubeflow.__main__ import main
from kubeflow.submit import (
    Credentials,
    SubmitError,
    SubmitRequest,
    check_endpoint,
    load_package,
    normalise_host,
    submit,
)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_load_package_reads_a_pipeline_spec_yaml(compiled_json: Path, tmp_path: Path) -> None:
    import yaml

    spec_yaml = tmp_path / "pipeline.yaml"
    spec_yaml.write_text(yaml.safe_dump(json.loads(compiled_json.read_text())["pipelineSpec"]))

    package = load_package(spec_yaml)

    assert package.tasks == load_package(compiled_json).tasks
    assert package.pipeline_root is None  # a bare PipelineSpec carries none: submit --pipeline-root


def test_load_package_reads_the_compiled_pipeline_job(compiled_json: Path, image: str) -> None:
    package = load_package(compiled_json)

    assert package.pipeline_name == "digits-pipeline"
    assert package.pipeline_root == "gs://bucket/pipelines"
    assert package.images == (image,)
    assert "Trainer" in package.tasks and "Pusher" in package.tasks


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("bad.json", "{not json: [", "is not valid JSON"),
        ("bad.yaml", "a: [1\nb: :", "is not valid YAML"),
        ("bad.json", '{"pipelineSpec": {"noSuchField": 1}}', "not a valid KFP PipelineSpec"),
        ("bad.yaml", "pipelineInfo:\n  name: x\n", "no tasks"),
        ("bad.json", "[1, 2]", "holds no pipeline"),
    ],
)
def test_load_package_rejects_what_is_not_a_pipeline(tmp_path: Path, name: str, content: str, expected: str) -> None:
    bad = tmp_path / name
    bad.write_text(content)

    with pytest.raises(SubmitError, match=expected):
        load_package(bad)


def test_dry_run_prints_the_submission_and_contacts_nothing(
    capsys: pytest.CaptureFixture[str], compiled_json: Path, fake_kfp, monkeypatch: pytest.MonkeyPatch, image: str
) -> None:
    monkeypatch.setenv("KFP_TOKEN", "secret-token-value")

    code, out, err = run_cli(
        capsys, "submit", "--host", fake_kfp.url, "--package", str(compiled_json),
        "--experiment", "nightly", "--run-name", "run-42", "--dry-run",
    )

    assert code == 0, err
    assert fake_kfp.requests == []
    assert "dry run: nothing was sent" in out
    assert f"host:          {fake_kfp.url}" in out
    assert "experiment:    nightly" in out
    assert "run name:      run-42" in out
    assert "pipeline root: gs://bucket/pipelines" in out
    assert image in out
    assert "Trainer" in out
    assert "credentials:   token" in out
    assert "beam:          TFX default (DirectRunner inside each task's pod)" in out
    assert "secret-token-value" not in out


def test_dry_run_shows_the_compiled_beam_runner(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "flink.json"
    assert main([
        "compile", "--image", "kit:1", "--output", str(out), "--pipeline-root", "gs://b/r",
        "--serving-dir", "gs://b/m", "--beam-runner", "flink", "--beam-master", "flink-jobmanager:8081",
    ]) == 0

    code, stdout, err = run_cli(capsys, "submit", "--host", "http://localhost:8080", "--package", str(out), "--dry-run")

    assert code == 0, err
    assert (
        "beam:          runner=FlinkRunner, environment=EXTERNAL, worker_pool=localhost:50000, "
        "master=flink-jobmanager:8081, parallelism=-1"
    ) in stdout


def test_submit_creates_the_experiment_and_posts_the_pipeline_spec(
    capsys: pytest.CaptureFixture[str], compiled_json: Path, fake_kfp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KFP_TOKEN", "t0ken")

    code, out, err = run_cli(
        capsys, "submit", "--host", fake_kfp.url, "--package", str(compiled_json), "--run-name", "first",
    )

    assert code == 0, err
    assert "submitted run run-1 in experiment 'digits-pipeline'" in out
    assert f"{fake_kfp.url}/#/runs/details/run-1" in out
    [experiment] = fake_kfp.posted("/apis/v2beta1/experiments")
    assert experiment["display_name"] == "digits-pipeline"
    [run] = fake_kfp.posted("/apis/v2beta1/runs")
    assert run["display_name"] == "first"
    assert run["experiment_id"] == "exp-1"
    assert run["runtime_config"]["pipeline_root"] == "gs://bucket/pipelines"
    posted_spec = run["pipeline_spec"]
    compiled_spec = json.loads(compiled_json.read_text())["pipelineSpec"]
    assert posted_spec["pipelineInfo"] == compiled_spec["pipelineInfo"]
    assert set(posted_spec["root"]["dag"]["tasks"]) == set(compiled_spec["root"]["dag"]["tasks"])
    assert all(r.headers.get("authorization") == "Bearer t0ken" for r in fake_kfp.requests)


def test_submit_reuses_an_existing_experiment_and_overrides_the_root(compiled_json: Path, fake_kfp) -> None:
    fake_kfp.experiments["nightly"] = "exp-7"
    request = SubmitRequest(
        host=fake_kfp.url,
        package=load_package(compiled_json),
        experiment="nightly",
        run_name="r",
        pipeline_root="gs://other/root",
    )

    run = submit(request)

    assert run.run_id == "run-1" and run.experiment_id == "exp-7"
    assert fake_kfp.posted("/apis/v2beta1/experiments") == []
    [posted] = fake_kfp.posted("/apis/v2beta1/runs")
    assert posted["runtime_config"]["pipeline_root"] == "gs://other/root"


def test_unreachable_host_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], compiled_json: Path, closed_port: int
) -> None:
    code, out, err = run_cli(
        capsys, "submit", "--host", f"http://127.0.0.1:{closed_port}", "--package", str(compiled_json)
    )

    assert code == 1
    assert err == f"error: cannot reach Kubeflow Pipelines at http://127.0.0.1:{closed_port}: connection refused (is the port-forward or ingress running?)\n"


@pytest.mark.parametrize("status", ["401", "403"])
def test_refused_login_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], compiled_json: Path, fake_kfp, status: str
) -> None:
    fake_kfp.mode = status

    code, out, err = run_cli(capsys, "submit", "--host", fake_kfp.url, "--package", str(compiled_json))

    assert code == 1
    assert err.startswith(f"error: {fake_kfp.url} refused the login (HTTP {status}): log in first")
    assert err.count("\n") == 1
    assert fake_kfp.posted("/apis/v2beta1/runs") == []


def test_runs_refused_after_a_healthy_check_come_back_from_the_kfp_client_as_one_line(
    capsys: pytest.CaptureFixture[str], compiled_json: Path, fake_kfp
) -> None:
    fake_kfp.mode = "deny-runs"

    code, out, err = run_cli(capsys, "submit", "--host", fake_kfp.url, "--package", str(compiled_json))

    assert code == 1
    assert err.startswith(f"error: {fake_kfp.url} refused the login (HTTP 403)")
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_rejected_run_shows_the_servers_reason(
    capsys: pytest.CaptureFixture[str], compiled_json: Path, fake_kfp
) -> None:
    fake_kfp.mode = "bad-run"

    code, out, err = run_cli(capsys, "submit", "--host", fake_kfp.url, "--package", str(compiled_json))

    assert code == 1
    assert err == (
        f"error: Kubeflow Pipelines at {fake_kfp.url} rejected the run: HTTP 400 Bad Request "
        "Invalid input error: pipeline spec is invalid\n"
    )


@pytest.mark.parametrize(
    "mode, expected",
    [("redirect", "redirected to a login page (/dex/auth"), ("html", "did not answer with JSON")],
)
def test_login_pages_are_recognised(fake_kfp, mode: str, expected: str) -> None:
    fake_kfp.mode = mode

    with pytest.raises(SubmitError, match=expected.replace("(", r"\(")):
        check_endpoint(fake_kfp.url)


def test_a_server_that_is_not_kfp_is_named(fake_kfp) -> None:
    with pytest.raises(SubmitError, match=r"HTTP 404.*not a Kubeflow Pipelines 2.x API"):
        check_endpoint(fake_kfp.url + "/not-kfp")


def test_credentials_come_from_the_environment_only() -> None:
    creds = Credentials.from_env({"KFP_TOKEN": "a", "KFP_COOKIES": "authservice_session=b"})

    assert creds.headers() == {"Authorization": "Bearer a", "Cookie": "authservice_session=b"}
    assert Credentials.from_env({}).headers() == {}


@pytest.mark.parametrize("host, expected", [("localhost:8080", "http://localhost:8080"), ("https://kf.example.com/", "https://kf.example.com")])
def test_host_normalisation(host: str, expected: str) -> None:
    assert normalise_host(host) == expected


@pytest.mark.parametrize("host", ["ftp://x", " ", "http://"])
def test_bad_hosts_are_refused(host: str) -> None:
    with pytest.raises(SubmitError, match="--host"):
        normalise_host(host)


def test_missing_package_says_how_to_make_one(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "submit", "--host", "http://localhost:8080", "--package", str(tmp_path / "none.json"), "--dry-run")

    assert code == 1
    assert "python -m kubeflow compile --image IMAGE" in err


def test_module_entry_point_prints_no_traceback(compiled_json: Path, closed_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kubeflow", "submit", "--host", f"http://127.0.0.1:{closed_port}", "--package", str(compiled_json)],
        capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach Kubeflow Pipelines at http://127.0.0.1:{closed_port}: connection refused (is the port-forward or ingress running?)"
    ]
