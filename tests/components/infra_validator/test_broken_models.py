"""Three broken models, each refused with its reason by the InfraValidator and by `push`.

Each one is refused twice: INFRA_NOT_BLESSED from the executor's Do() on real artifacts (and the
stock Pusher then pushes nothing), and a non-zero exit from `python -m serving.push` with the
serving directory byte-for-byte as it was.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import iv_artifacts
import iv_saved_models
from components.infra_validator import read_blessing, summarize_blessing
from serving import push

# (builder, words the reason must contain, attempts the executor makes)
CASES = {
    "fails_at_inference": (
        ["request 1/", "Predict on signature 'serving_default'", "INVALID_ARGUMENT", "intentional inference failure"],
        1,
    ),
    "no_signatures": (["has no serving signatures"], 0),
    "truncated_variables": (["failed to load", "Read less bytes than requested"], 1),
}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return iv_saved_models.build_good(tmp_path_factory.mktemp("good") / "model")


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(CASES))
def test_infra_validator_does_not_bless(name: str, tmp_path: Path):
    words, attempts = CASES[name]
    model = iv_artifacts.model_artifact(tmp_path, iv_saved_models.BROKEN[name])
    examples = iv_artifacts.examples_artifact(tmp_path, [[1.0, 2.0, 3.0, 4.0]])

    blessing = iv_artifacts.run_infra_validator(tmp_path, model, examples, num_tries=3)

    assert (Path(blessing.uri) / "INFRA_NOT_BLESSED").exists()
    assert not (Path(blessing.uri) / "INFRA_BLESSED").exists()
    result = read_blessing(blessing)
    assert not result.blessed
    for word in words:
        assert word in result.failure_reason, result.failure_reason
    # A model that fails deterministically is not retried.
    assert result.attempts == attempts
    assert summarize_blessing(blessing).startswith("InfraValidator: NOT blessed")
    assert not (Path(blessing.uri) / "stamped_model").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(CASES))
def test_push_refuses_and_leaves_the_serving_dir_untouched(
    name: str, tmp_path: Path, good_model: Path, capsys: pytest.CaptureFixture[str]
):
    words, _ = CASES[name]
    broken = iv_saved_models.BROKEN[name](tmp_path / "broken")
    serving_dir = tmp_path / "serving"
    shutil.copytree(good_model, serving_dir / "m" / "1")
    before = _tree(serving_dir)

    code = push.main([str(broken), "--serving-dir", str(serving_dir), "--model-name", "m", "--server", "embedded"])

    assert code == push.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith(f"push: refused {broken}: ")
    for word in words:
        assert word in err, err
    assert _tree(serving_dir) == before
