"""The Dockerfiles: valid instructions, sources that exist, and every pin equal to the lock.
(Without Docker; tests/containers builds and runs the images, through bin/test-containers.)"""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = {"pipeline": REPO / "kubeflow" / "Dockerfile", "serving": REPO / "kubeflow" / "serving.Dockerfile"}
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}
LOCK = REPO / "requirements" / "constraints.txt"


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword, arguments.strip()))
    assert not pending, f"{path}: the last instruction ends with a continuation"
    return instructions


def lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[normalise(name)] = version.strip()
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def stages(path: Path) -> list[str]:
    return [args.split()[-1] for keyword, args in parse_dockerfile(path) if keyword == "FROM" and " AS " in args]


@pytest.mark.parametrize("which", sorted(DOCKERFILES))
def test_instructions_are_valid(which: str) -> None:
    instructions = parse_dockerfile(DOCKERFILES[which])

    assert instructions[0][0] in ("FROM", "ARG")
    for keyword, arguments in instructions:
        assert keyword in INSTRUCTIONS, f"unknown instruction {keyword!r}"
        assert arguments, f"{keyword} without arguments"
        if keyword in ("ENTRYPOINT", "CMD"):
            assert isinstance(json.loads(arguments), list), "exec form, so signals reach the process"
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                assert re.match(r"^[A-Z_][A-Z0-9_]*=", pair), f"ENV {pair!r} is not KEY=value"
        if keyword == "RUN":
            shlex.split(arguments)  # balanced quotes


def default_images(path: Path) -> list[str]:
    """The images the FROM lines pull with every build argument at its default (stages skipped)."""
    instructions = parse_dockerfile(path)
    defaults = {}
    for keyword, args in instructions:
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in args:
            name, value = args.split("=", 1)
            defaults[name] = value
    stages_seen: set[str] = set()
    images = []
    for keyword, args in instructions:
        if keyword != "FROM":
            continue
        words = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], args).split()
        if words[0] not in stages_seen:
            images.append(words[0])
        if len(words) == 3 and words[1].upper() == "AS":
            stages_seen.add(words[2])
    return images


@pytest.mark.parametrize("which", sorted(DOCKERFILES))
def test_base_images_are_pinned_to_the_lock(which: str) -> None:
    froms = default_images(DOCKERFILES[which])
    header = LOCK.read_text()
    locked_python = re.search(r"Python (3\.10\.\d+)", header).group(1)

    assert froms[-1] == f"python:{locked_python}-slim-bookworm"  # bookworm: the lock's glibc 2.36
    for image in froms:
        assert re.match(r"^[\w./-]+:[\w.-]+$", image) and not image.endswith(":latest"), image
    if which == "pipeline":
        assert froms[0] == f"apache/beam_python3.10_sdk:{lock()['apache-beam']}"


def test_the_beam_launcher_stage_is_chosen_by_a_build_argument() -> None:
    instructions = parse_dockerfile(DOCKERFILES["pipeline"])
    froms = [args for keyword, args in instructions if keyword == "FROM"]

    assert "launcher-${BEAM_LAUNCHER} AS launcher" in froms
    assert {"launcher-beam", "launcher-none"} <= set(stages(DOCKERFILES["pipeline"]))
    assert ("COPY", "--from=launcher /opt/apache/beam /opt/apache/beam") in instructions
    assert ("ARG", "BEAM_LAUNCHER=beam") in instructions


@pytest.mark.parametrize("which", sorted(DOCKERFILES))
def test_every_pip_install_uses_the_lock_and_every_pin_matches_it(which: str) -> None:
    instructions = parse_dockerfile(DOCKERFILES[which])
    pins = lock()
    setup_pip = re.search(r'"pip==([\d.]+)"', (REPO / "bin" / "setup").read_text()).group(1)
    copied = " ".join(args for keyword, args in instructions if keyword == "COPY")
    installs = 0

    for keyword, arguments in instructions:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", arguments):
            words = shlex.split(command)
            if words[:4] != ["python", "-m", "pip", "install"]:
                continue
            installs += 1
            for word in words[4:]:
                if "==" in word:
                    name, version = word.split("==")
                    expected = setup_pip if name == "pip" else pins[normalise(name)]
                    assert version == expected, f"{word} differs from the lock ({expected})"
            if not any("pip==" in w for w in words):
                assert "-c" in words and words[words.index("-c") + 1] == "requirements/constraints.txt", command
    assert installs >= 2
    assert "requirements/constraints.txt" in copied


@pytest.mark.parametrize("which", sorted(DOCKERFILES))
def test_copy_sources_exist_and_are_not_dockerignored(which: str) -> None:
    path = DOCKERFILES[which]
    ignored = [
        line.strip() for line in Path(f"{path}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".venv", "runs", ".git"} <= set(ignored), "the build context would carry the venv and runs"

    for keyword, arguments in parse_dockerfile(path):
        if keyword != "COPY" or arguments.startswith("--from="):
            continue
        *sources, _destination = shlex.split(arguments)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
            assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is dockerignored"


def test_pipeline_image_contains_every_project_package() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = re.findall(r'"(\w+)\*"', re.search(r"include = \[([^\]]*)\]", pyproject).group(1))
    copies = [args for keyword, args in parse_dockerfile(DOCKERFILES["pipeline"]) if keyword == "COPY"]

    assert packages
    for package in packages:
        assert f"{package} {package}" in copies, f"the pipeline image lacks the {package} package"


PROJECT_PACKAGES = {"pipeline", "components", "serving", "kubeflow"}


def imports(package_dir: Path, module_level_only: bool = False) -> set[str]:
    """Top-level names the package's modules import (all of them, or only at module level)."""
    names = set()
    for source in package_dir.rglob("*.py"):
        tree = ast.parse(source.read_text())
        nodes = tree.body if module_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def third_party_imports(package_dir: Path) -> set[str]:
    return {n for n in imports(package_dir) if n not in sys.stdlib_module_names and n not in PROJECT_PACKAGES}


def test_the_server_image_needs_no_other_project_package() -> None:
    # The serving image copies only serving/: no module of it imports another project package,
    # not even lazily (the client's `evaluate --data digits` reads scikit-learn itself).
    assert imports(REPO / "serving") & PROJECT_PACKAGES <= {"serving"}


def test_serving_image_installs_what_the_serving_package_imports() -> None:
    listed = serving_requirements()
    distributions = module_distributions()
    pins = lock()

    assert listed <= set(pins), f"not in the lock: {listed - set(pins)}"
    installed = dependency_closure(listed)
    imported = third_party_imports(REPO / "serving")
    assert "tensorflow" in imported
    for module in sorted(imported):
        dists = {normalise(d) for d in distributions.get(module, [])}
        assert dists, f"serving imports {module}, which no installed distribution provides"
        assert dists & installed, f"serving imports {module} ({', '.join(sorted(dists))}), which serving-requirements.txt does not bring in"


def module_distributions() -> dict[str, set[str]]:
    """Import name -> distributions providing it (Python 3.10's packages_distributions reads only
    top_level.txt, which numpy and others do not ship, so the RECORD files are read too)."""
    mapping: dict[str, set[str]] = {}
    for dist in importlib.metadata.distributions():
        names = set((dist.read_text("top_level.txt") or "").split())
        for file in dist.files or []:
            first = file.parts[0]
            if first in ("..", "__pycache__") or first.endswith((".dist-info", ".egg-info", ".data")):
                continue
            names.add(first[:-3] if first.endswith(".py") else first)
        for name in names:
            mapping.setdefault(name, set()).add(dist.metadata["Name"])
    return mapping


def dependency_closure(names: set[str]) -> set[str]:
    """The distributions pip installs for `names` (with the extras their dependents ask for),
    read from the installed metadata."""
    from packaging.requirements import Requirement

    seen: set[tuple[str, str]] = set()
    todo = [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                dependency = normalise(requirement.name)
                todo += [(dependency, "")] + [(dependency, e) for e in requirement.extras]
    return {name for name, _ in seen}


def serving_requirements() -> set[str]:
    return {
        normalise(line) for line in (REPO / "kubeflow" / "serving-requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


@pytest.mark.parametrize("which", sorted(DOCKERFILES))
def test_images_can_build_what_has_no_binary_wheel(which: str) -> None:
    # A distribution installed here from a locally built wheel (platform tag linux_x86_64, not
    # manylinux) has no binary wheel on PyPI: pip compiles it in the image, which needs g++.
    installs = {"tfx-serving-kit"} if which == "pipeline" else serving_requirements()
    needs_compiler = []
    for name in sorted(dependency_closure(installs)):
        wheel = importlib.metadata.distribution(name).read_text("WHEEL") or ""
        tags = re.findall(r"^Tag: (.+)$", wheel, flags=re.M)
        if tags and all(t.endswith("linux_x86_64") and "manylinux" not in t for t in tags):
            needs_compiler.append(name)
    runs = " ".join(args for keyword, args in parse_dockerfile(DOCKERFILES[which]) if keyword == "RUN")

    assert "tensorflow" in dependency_closure(installs)
    if needs_compiler:
        assert "g++" in runs, f"{needs_compiler} build from source: the image must install g++ first"


def test_serving_entrypoint_has_tf_servings_contract() -> None:
    script = REPO / "kubeflow" / "serving_entrypoint.sh"
    text = script.read_text()
    command = shlex.split(" ".join(line.rstrip("\\") for line in text.splitlines() if not line.startswith("#")).split("exec ", 1)[1])

    assert subprocess.run(["sh", "-n", str(script)], capture_output=True).returncode == 0
    assert command[:3] == ["python", "-m", "serving.server"]
    assert "--port=8500" in command and "--rest_api_port=8501" in command
    assert "--model_name=${MODEL_NAME:-model}" in command
    assert "--model_base_path=${MODEL_BASE_PATH:-/models}/${MODEL_NAME:-model}" in command
    assert command[-1] == "$@", "container args must come last so they override, as with tensorflow/serving"
    assert "--num_server_processes=1" in command  # one process per pod, as tensorflow/serving
    dockerfile = dict(parse_dockerfile(DOCKERFILES["serving"]))
    assert "8500 8501" in dockerfile["EXPOSE"]
    assert json.loads(dockerfile["ENTRYPOINT"]) == ["/usr/bin/tf_serving_entrypoint.sh"]
    env = dict(pair.split("=", 1) for pair in shlex.split(dockerfile["ENV"]))
    assert (env["MODEL_NAME"], env["MODEL_BASE_PATH"]) == ("model", "/models")


def dependency_prefix(path: Path) -> list[tuple[str, str]]:
    """The final stage's instructions up to and including its install of the serving requirements."""
    instructions = parse_dockerfile(path)
    start = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    for end in range(start, len(instructions)):
        keyword, arguments = instructions[end]
        if keyword == "RUN" and "-r kubeflow/serving-requirements.txt" in arguments:
            return instructions[start : end + 1]
    raise AssertionError(f"{path}: no RUN installs kubeflow/serving-requirements.txt")


def test_both_images_share_the_dependency_layer() -> None:
    # Same instructions from FROM to the serving requirements' install: Docker's layer cache then
    # builds TensorFlow's layer once for both images (bin/docker-setup builds them one after the other).
    pipeline, serving = dependency_prefix(DOCKERFILES["pipeline"]), dependency_prefix(DOCKERFILES["serving"])

    assert pipeline == serving
    assert pipeline[0] == ("FROM", "${BASE_IMAGE}")
