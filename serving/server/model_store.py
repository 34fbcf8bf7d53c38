"""Which versions of which models are loaded: policies, labels, status and hot reload.

Mirrors TF Serving's ServerCore with a FileSystemStoragePathSource and the
AvailabilityPreservingPolicy: every poll reads each model's base path (through
`serving.layout`), the version policy (latest N / all / specific) picks the aspired versions
among the *complete* SavedModels, new aspired versions are loaded before any old one is
unloaded, and an old version is only unloaded once an aspired one is AVAILABLE. A version that
fails to load goes to END with its error and never takes traffic. Request threads read an
immutable snapshot, so lookups take no lock.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Iterable

from tensorflow_serving.config import file_system_storage_path_source_pb2 as fs_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import layout
from serving.errors import Code, ServingError, VersionStatus, invalid
from serving.server.servable import Servable, load_servable

logger = logging.getLogger(__name__)

Loader = Callable[[str, int, str], Servable]
Warmup = Callable[[Servable], None]


class _Model:
    """Mutable bookkeeping for one configured model; touched only under ModelStore._lock."""

    def __init__(self, config: model_server_config_pb2.ModelConfig) -> None:
        self.config = config
        self.status: dict[int, VersionStatus] = {}
        self.servables: dict[int, Servable] = {}
        self.failed: set[int] = set()
        self.labels: dict[str, int] = {}


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config `--model_name/--model_base_path` stand for."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def validate_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    """Rejects configs the server cannot honour, naming the model and field."""
    if config.WhichOneof("config") == "custom_model_config":
        raise invalid("ModelServerConfig.custom_model_config is not supported; use model_config_list")
    seen = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise invalid("ModelConfig.name must be set for every model in model_config_list")
        if "/" in model.name or model.name in (".", "..") or "\x00" in model.name:
            raise invalid(f"Illegal model name {model.name!r}: it may not contain '/' or be '.'/'..'")
        if model.name in seen:
            raise invalid(f"Illegal to list model {model.name} multiple times in config list")
        seen.add(model.name)
        if not model.base_path:
            raise invalid(f"ModelConfig {model.name} has no base_path")
        if model.model_platform and model.model_platform != "tensorflow":
            raise invalid(
                f"ModelConfig {model.name}: model_platform {model.model_platform!r} is not "
                "supported; expected 'tensorflow'"
            )
        for label, version in model.version_labels.items():
            if not label or "/" in label or ":" in label:
                raise invalid(f"Illegal version label {label!r} for model {model.name}")
            if version < 0:
                raise invalid(f"Version label {label} of model {model.name} has negative version")


def _aspired(policy: fs_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy, versions: list[int]) -> set[int]:
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return set(versions)
    if which == "specific":
        wanted = set(policy.specific.versions)
        return {v for v in versions if v in wanted}
    count = policy.latest.num_versions if which == "latest" and policy.latest.num_versions else 1
    return set(sorted(versions)[-count:])


# Version directories skipped as incomplete, with the reason last logged (guarded by the lock):
# each is logged once, not on every poll, and again only if the reason changes.
_skipped: dict[str, str] = {}
_skipped_lock = threading.Lock()


def _note_skipped(version_dir: Path, reason: str | None) -> None:
    key = str(version_dir)
    with _skipped_lock:
        if reason is None:
            _skipped.pop(key, None)
            return
        if _skipped.get(key) == reason:
            return
        _skipped[key] = reason
    logger.warning("not loading %s: %s", key, reason)


def _version_dirs(base_path: str) -> dict[int, Path]:
    """Complete SavedModel version directories under a base path, by version number.

    Incomplete ones are skipped (never loaded), and each is logged once with the reason."""
    base = Path(base_path)
    found: dict[int, Path] = {}
    if not base.is_dir():
        return found
    for child in base.iterdir():
        version = layout.parse_version(child.name)
        if version is None or not child.is_dir():
            continue
        if version in found:
            logger.warning("duplicate version %d under %s; using %s", version, base, found[version])
            continue
        problem = layout.saved_model_problem(child)
        _note_skipped(child, problem)
        if problem is None:
            found[version] = child
    return found


def _error_of(error: BaseException) -> tuple[Code, str]:
    if isinstance(error, ServingError):
        return error.code, error.message
    code = getattr(error, "error_code", None)
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    try:
        return Code(code), message.split("\n")[0]
    except ValueError:
        return Code.UNKNOWN, f"{type(error).__name__}: {message.splitlines()[0] if message else ''}"


class ModelStore:
    """The set of served models and versions, kept in step with the file system."""

    def __init__(
        self,
        config: model_server_config_pb2.ModelServerConfig,
        *,
        poll_wait_seconds: float = 1.0,
        loader: Loader | None = None,
        warmup: Warmup | None = None,
        allow_labels_for_unavailable: bool = False,
    ) -> None:
        validate_config(config)
        self._config = config
        self._poll_wait = poll_wait_seconds
        self._loader = loader or (lambda name, version, path: load_servable(name, version, path))
        self._warmup = warmup
        self._allow_unavailable_labels = allow_labels_for_unavailable
        self._lock = threading.Lock()  # guards _models
        self._poll_lock = threading.Lock()  # one poll or reload at a time
        self._models: dict[str, _Model] = {}
        # name -> (sorted versions, {version: servable}, {label: version}); replaced, never mutated.
        self._snapshot: dict[str, tuple[tuple[int, ...], dict[int, Servable], dict[str, int]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[str, int, str], None]] = []

    # ---- lifecycle -------------------------------------------------------------------------

    def set_warmup(self, warmup: Warmup | None) -> None:
        """Runs `warmup(servable)` on each new version before it takes traffic; an exception
        fails the load. Set before `start`."""
        self._warmup = warmup

    def add_listener(self, listener: Callable[[str, int, str], None]) -> None:
        """`listener(model, version, event)` is called on 'loaded', 'failed' and 'unloaded'."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Loads what the config asks for (blocking), then polls in a background thread."""
        self._apply_config(self._config, initial=True)
        if self._poll_wait > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="model-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must survive any file system hiccup
                logger.exception("polling the model base paths failed")

    # ---- config ----------------------------------------------------------------------------

    @property
    def config(self) -> model_server_config_pb2.ModelServerConfig:
        return self._config

    def reload_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """HandleReloadConfigRequest: the new config supersedes the old; omitted models unload."""
        validate_config(config)
        self._apply_config(config, initial=False)

    def _apply_config(self, config: model_server_config_pb2.ModelServerConfig, initial: bool) -> None:
        with self._poll_lock:
            wanted = {m.name: m for m in config.model_config_list.config}
            with self._lock:
                for name in list(self._models):
                    if name not in wanted:
                        model = self._models.pop(name)
                        for version in model.servables:
                            model.status[version] = VersionStatus(version, "END")
                        logger.info("model %s removed from the config; unloaded", name)
                for name, model_config in wanted.items():
                    model = self._models.get(name)
                    if model is None:
                        self._models[name] = _Model(model_config)
                    else:
                        if model.config.base_path != model_config.base_path:
                            model.failed.clear()
                        model.config = model_config
                self._config = config
            self._poll_locked()
            self._apply_labels(initial)

    def _apply_labels(self, initial: bool) -> None:
        with self._lock:
            new_labels: dict[str, dict[str, int]] = {}
            for name, model in self._models.items():
                labels = dict(model.config.version_labels)
                for label, version in labels.items():
                    # With allow_labels_for_unavailable, a new label may name a version still to come.
                    allowed = self._allow_unavailable_labels and model.labels.get(label) != version
                    if version not in model.servables and not allowed:
                        raise ServingError(
                            Code.FAILED_PRECONDITION,
                            f"Request to assign label to version {version} of model {name}, which is "
                            "not currently available for inference",
                        )
                new_labels[name] = labels
            for name, labels in new_labels.items():
                self._models[name].labels = labels
            self._publish()

    # ---- polling ---------------------------------------------------------------------------

    def poll_once(self) -> None:
        with self._poll_lock:
            self._poll_locked()

    def _poll_locked(self) -> None:
        with self._lock:
            models = list(self._models.items())
        for name, model in models:
            self._sync_model(name, model)

    def _sync_model(self, name: str, model: _Model) -> None:
        config = model.config
        on_disk = _version_dirs(config.base_path)
        aspired = _aspired(config.model_version_policy, sorted(on_disk))
        with self._lock:
            model.failed &= set(on_disk)  # a failed version that vanished may be retried later
            # A loaded version whose directory is now another one (the base path changed in a
            # config reload) is loaded again from the new place; the old copy serves meanwhile.
            to_load = sorted(
                v
                for v in aspired
                if v not in model.failed
                and (v not in model.servables or model.servables[v].path != str(on_disk[v]))
            )
        for version in sorted(to_load, reverse=True):
            self._load(name, model, version, str(on_disk[version]))
        with self._lock:
            if self._models.get(name) is not model:
                return  # removed from the config while loading
            aspired_available = any(v in model.servables for v in aspired)
            stale = [v for v in model.servables if v not in aspired]
            if stale and aspired_available:
                for version in stale:
                    del model.servables[version]
                    model.status[version] = VersionStatus(version, "END")
                    logger.info("unloaded %s version %d", name, version)
                self._publish()
                for version in stale:
                    self._notify(name, version, "unloaded")

    def _load(self, name: str, model: _Model, version: int, path: str) -> None:
        with self._lock:
            model.status[version] = VersionStatus(version, "LOADING")
        logger.info("loading %s version %d from %s", name, version, path)
        try:
            servable = self._loader(name, version, path)
            if self._warmup is not None:
                self._warmup(servable)
        except Exception as error:  # noqa: BLE001 - any load failure is reported, not raised
            code, message = _error_of(error)
            logger.error("failed to load %s version %d from %s: %s", name, version, path, message)
            with self._lock:
                model.failed.add(version)
                model.status[version] = VersionStatus(version, "END", code.name, message)
            self._notify(name, version, "failed")
            return
        with self._lock:
            if self._models.get(name) is not model:
                return
            model.servables[version] = servable
            model.status[version] = VersionStatus(version, "AVAILABLE")
            self._publish()
        self._notify(name, version, "loaded")

    def _notify(self, name: str, version: int, event: str) -> None:
        for listener in self._listeners:
            try:
                listener(name, version, event)
            except Exception:  # noqa: BLE001
                logger.exception("model event listener failed")

    def _publish(self) -> None:
        """Replaces the lock-free snapshot request threads read. Caller holds _lock."""
        self._snapshot = {
            name: (tuple(sorted(m.servables)), dict(m.servables), dict(m.labels))
            for name, m in self._models.items()
        }

    # ---- lookups (request path) ------------------------------------------------------------

    def model_names(self) -> list[str]:
        return sorted(self._snapshot)

    def resolve_label(self, name: str, label: str) -> int:
        entry = self._snapshot.get(name)
        if entry is not None and label in entry[2]:
            return entry[2][label]
        raise invalid(f"Unrecognized servable version label: {label}")

    def get_servable(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a ModelSpec names, with TF Serving's NOT_FOUND/INVALID_ARGUMENT texts."""
        if label:
            version = self.resolve_label(name, label)
        entry = self._snapshot.get(name)
        if version is None:
            if entry is None or not entry[0]:
                raise ServingError(Code.NOT_FOUND, f"Servable not found for request: Latest({name})")
            return entry[1][entry[0][-1]]
        servable = entry[1].get(version) if entry is not None else None
        if servable is None:
            raise ServingError(
                Code.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})"
            )
        return servable

    def version_status(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> list[VersionStatus]:
        """GetModelStatus: states of all versions (newest first) or of one."""
        if label:
            version = self.resolve_label(name, label)
        with self._lock:
            model = self._models.get(name)
            states = dict(model.status) if model is not None else {}
        if not states:
            raise ServingError(Code.NOT_FOUND, f"Could not find any versions of model {name}")
        if version is not None:
            if version not in states:
                raise ServingError(Code.NOT_FOUND, f"Could not find version {version} of model {name}")
            return [states[version]]
        return [states[v] for v in sorted(states, reverse=True)]

    def servables(self) -> Iterable[Servable]:
        for _, servables, _ in self._snapshot.values():
            yield from servables.values()


