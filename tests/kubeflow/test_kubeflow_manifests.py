"""Kubernetes manifests: every file parses into the kubernetes client's models, strictly; both
overlays render to the same objects but for the image; the model config parses as TF Serving's proto."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import kubernetes.client as k8s
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "kubeflow" / "manifests"
OVERLAYS = ("tf-serving", "embedded")
EXPECTED_KINDS = {
    "base/namespace.yaml": ["Namespace"],
    "base/models-pvc.yaml": ["PersistentVolumeClaim"],
    "base/models-config.yaml": ["ConfigMap"],
    "base/deployment.yaml": ["Deployment"],
    "base/service.yaml": ["Service"],
    "base/pdb.yaml": ["PodDisruptionBudget"],
    "jobs/publish-model.yaml": ["Job"],
    "jobs/models-loader.yaml": ["Pod"],
}
_PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def to_model(data: Any, type_name: str, where: str) -> Any:
    """Builds kubernetes client model `type_name` from `data`, failing on any key the API does not
    have (the client's own deserializer silently drops those: a misspelt `readinesProbe` would pass)."""
    if type_name in _PRIMITIVES:
        assert isinstance(data, _PRIMITIVES[type_name]) and not (type_name == "int" and isinstance(data, bool)), (
            f"{where}: expected {type_name}, got {data!r}"
        )
        return data
    if type_name == "object":  # IntOrString and free-form fields
        return data
    if type_name.startswith("list["):
        assert isinstance(data, list), f"{where}: expected a list, got {data!r}"
        return [to_model(item, type_name[5:-1], f"{where}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        assert isinstance(data, dict), f"{where}: expected a mapping, got {data!r}"
        value_type = type_name[5:-1].split(", ", 1)[1]
        return {key: to_model(value, value_type, f"{where}.{key}") for key, value in data.items()}
    cls = getattr(k8s, type_name)
    assert isinstance(data, dict), f"{where}: expected a {type_name} mapping, got {data!r}"
    by_json_name = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    unknown = sorted(set(data) - set(by_json_name))
    assert not unknown, f"{where}: {type_name} has no field(s) {unknown}"
    kwargs = {
        by_json_name[key]: to_model(value, cls.openapi_types[by_json_name[key]], f"{where}.{key}")
        for key, value in data.items()
    }
    return cls(**kwargs)  # the client checks required fields and enums here


def validate_object(obj: dict, where: str) -> Any:
    group_version = obj["apiVersion"].split("/")[-1]
    return to_model(obj, f"{group_version.capitalize()}{obj['kind']}", where)


def load(relative: str) -> list[dict]:
    with (MANIFESTS / relative).open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


# A renderer for the subset of kustomize these manifests use; any other field fails the test,
# so nothing can be silently ignored here and then behave differently under `kubectl apply -k`.
_KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}


def _apply_json6902(obj: dict, operations: list[dict]) -> None:
    """The `replace` and `add` operations of RFC 6902 on JSON pointers (what the overlays use)."""
    for operation in operations:
        assert operation["op"] in ("replace", "add"), operation
        *parents, last = operation["path"].lstrip("/").split("/")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if operation["op"] == "replace":
            assert key in node if isinstance(node, dict) else key < len(node), f"replace of a missing {operation['path']}"
        node[key] = copy.deepcopy(operation["value"])


def render(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= _KUSTOMIZE_FIELDS, set(kustomization) - _KUSTOMIZE_FIELDS
    objects: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        assert path.exists(), f"{directory}: resource {resource} does not exist"
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    objects = copy.deepcopy(objects)
    for obj in objects:
        if "namespace" in kustomization and obj["kind"] != "Namespace":
            obj["metadata"]["namespace"] = kustomization["namespace"]
        for label_set in kustomization.get("labels", []):
            assert set(label_set) <= {"pairs"}, "only labels without selectors are rendered here"
            obj["metadata"].setdefault("labels", {}).update(label_set["pairs"])
        for image in kustomization.get("images", []):
            for container in _containers(obj):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"target", "patch"} and set(patch["target"]) == {"kind", "name"}, patch
        targets = [o for o in objects if (o["kind"], o["metadata"]["name"]) == (patch["target"]["kind"], patch["target"]["name"])]
        assert len(targets) == 1, f"{directory}: patch target {patch['target']} matches {len(targets)} objects"
        _apply_json6902(targets[0], yaml.safe_load(patch["patch"]))
    return objects


def _containers(obj: dict) -> list[dict]:
    if obj["kind"] == "Pod":
        return obj["spec"]["containers"]
    if obj["kind"] in ("Deployment", "Job"):
        return obj["spec"]["template"]["spec"]["containers"]
    return []


def lock_version(package: str) -> str:
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower().replace("_", "-") == package:
            return version.strip()
    raise AssertionError(f"{package} is not in the lock")


def rendered(overlay: str) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render(MANIFESTS / "overlays" / overlay)}


@pytest.mark.parametrize("relative, kinds", sorted(EXPECTED_KINDS.items()))
def test_every_manifest_is_a_valid_kubernetes_object(relative: str, kinds: list[str]) -> None:
    documents = load(relative)

    assert [d["kind"] for d in documents] == kinds
    for document in documents:
        validate_object(document, relative)


def test_no_manifest_is_left_untested() -> None:
    files = {str(p.relative_to(MANIFESTS)) for p in MANIFESTS.rglob("*.yaml") if p.name != "kustomization.yaml"}

    assert files == set(EXPECTED_KINDS)


def test_the_strict_validator_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(load("base/deployment.yaml")[0])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")

    with pytest.raises(AssertionError, match=r"V1Container has no field\(s\) \['readinesProbe'\]"):
        validate_object(deployment, "deployment")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_render_valid_objects(overlay: str) -> None:
    objects = rendered(overlay)

    assert sorted(kind for kind, _ in objects) == sorted(
        ["Namespace", "PersistentVolumeClaim", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    )
    for (kind, name), obj in objects.items():
        validate_object(obj, f"{overlay}:{kind}/{name}")
        if kind != "Namespace":
            assert obj["metadata"]["namespace"] == "tfx-serving"


def test_the_two_servers_are_interchangeable_only_the_image_and_probes_differ() -> None:
    tf_serving, embedded = rendered("tf-serving"), rendered("embedded")
    key = ("Deployment", "model-server")
    real_image = tf_serving[key]["spec"]["template"]["spec"]["containers"][0]["image"]
    embedded_image = embedded[key]["spec"]["template"]["spec"]["containers"][0]["image"]

    assert real_image == f"tensorflow/serving:{lock_version('tensorflow-serving-api')}"
    assert embedded_image.endswith("/tfx-serving-kit-server:0.1.0")
    # The embedded server's probes use its health endpoints (TF Serving has none).
    container = embedded[key]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    real = tf_serving[key]["spec"]["template"]["spec"]["containers"][0]
    container["image"] = real_image
    container["readinessProbe"], container["livenessProbe"] = real["readinessProbe"], real["livenessProbe"]
    assert embedded == tf_serving


def deployment_parts() -> tuple[dict, dict, dict[str, str]]:
    objects = rendered("tf-serving")
    deployment = objects[("Deployment", "model-server")]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in container["args"])
    return deployment, container, flags


def test_deployment_serves_like_tf_serving() -> None:
    deployment, container, flags = deployment_parts()
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert deployment["spec"]["replicas"] >= 2
    assert ports == {"grpc": 8500, "http": 8501}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    probe = container["readinessProbe"]["httpGet"]
    assert probe == {"path": f"/v1/models/{env['MODEL_NAME']}", "port": "http"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["models"]["mountPath"] == env["MODEL_BASE_PATH"] == "/models"
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "models"
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0
    assert flags["file_system_poll_wait_seconds"] == "1"
    config_dir = mounts["config"]["mountPath"]
    assert "subPath" not in mounts["config"], "subPath mounts never see ConfigMap updates"
    assert flags["model_config_file"] == f"{config_dir}/models.config"
    assert flags["monitoring_config_file"] == f"{config_dir}/monitoring.config"
    assert volumes["config"]["configMap"]["name"] == "models-config"


def test_model_config_parses_as_tf_serving_config_with_stable_and_canary() -> None:
    objects = rendered("tf-serving")
    _, container, _ = deployment_parts()
    config_map = objects[("ConfigMap", "models-config")]["data"]
    config = text_format.Parse(config_map["models.config"], model_server_config_pb2.ModelServerConfig())

    [model] = config.model_config_list.config
    env = {e["name"]: e["value"] for e in container["env"]}
    assert model.name == env["MODEL_NAME"]
    assert model.base_path == f"{env['MODEL_BASE_PATH']}/{model.name}"
    assert model.model_platform == "tensorflow"
    assert set(model.version_labels) == {"stable", "canary"}
    assert model.version_labels["stable"] < model.version_labels["canary"]
    assert set(model.version_labels.values()) <= set(model.model_version_policy.specific.versions)


def test_monitoring_config_parses_and_matches_the_scrape_annotation() -> None:
    from serving.server.config_protos import MonitoringConfig

    objects = rendered("tf-serving")
    deployment = objects[("Deployment", "model-server")]
    text = objects[("ConfigMap", "models-config")]["data"]["monitoring.config"]
    monitoring = text_format.Parse(text, MonitoringConfig())

    assert monitoring.prometheus_config.enable
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == monitoring.prometheus_config.path
    assert annotations["prometheus.io/port"] == "8501"


def test_service_exposes_both_apis_of_the_pods() -> None:
    objects = rendered("tf-serving")
    service = objects[("Service", "model-server")]
    pod_labels = objects[("Deployment", "model-server")]["spec"]["template"]["metadata"]["labels"]

    assert {(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        ("grpc", 8500, "grpc"), ("http", 8501, "http")
    }
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = objects[("PodDisruptionBudget", "model-server")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_publish_job_runs_the_publish_command_on_the_models_volume() -> None:
    from kubeflow.__main__ import _parser

    [job] = load("jobs/publish-model.yaml")
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    # Kubernetes expands $(VAR) from the container's env before the command runs.
    argv = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["command"][3:] + container["args"]]

    assert container["command"][:3] == ["python", "-m", "kubeflow"]
    args = _parser().parse_args(argv)
    assert args.command == "publish"
    [mount] = container["volumeMounts"]
    assert mount["mountPath"] == args.serving_dir and not mount.get("readOnly")
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "models"
    assert args.model_name == rendered("tf-serving")[("Deployment", "model-server")]["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"]


def test_docs_commands_name_existing_manifest_paths() -> None:
    docs = (REPO / "docs" / "kubeflow.md").read_text()
    paths = set(re.findall(r"kubeflow/manifests/[\w./-]+", docs))

    assert paths, "docs/kubeflow.md names no manifest"
    for path in paths:
        assert (REPO / path.rstrip(".")).exists(), f"docs/kubeflow.md names {path}, which does not exist"
    for line in re.findall(r"^\s*(kubectl .+)$", docs, flags=re.M):
        shlex.split(line)  # every documented kubectl command is at least well-quoted
