"""Push a model trained elsewhere as the next version of a served model, or roll back.

    python -m serving.push MODEL --serving-dir DIR --model-name NAME [--label stable|canary]
    python -m serving.push frozen.pb [--input-tensors x:0] [--output-tensors probs:0] --serving-dir DIR --model-name NAME
    python -m serving.push rollback --serving-dir DIR --model-name NAME --to VERSION [--label stable|canary]
    python -m serving.push export --serving-dir DIR --model-name NAME [--version N] [--output model.tar.gz]

MODEL is a SavedModel directory, a `.keras` or `.h5` file, or a TF1 frozen GraphDef `.pb`, turned
into a SavedModel in a temporary directory by `serving.convert`. The model is validated as the
InfraValidator validates (`serving.validate`): it must load in a real model-server process
(`tensorflow_model_server` if on PATH, else `python -m serving.server`) and answer a request built
from its signatures' inputs. Only then is it published with `serving.layout.publish`: copied aside
and renamed into `<DIR>/<NAME>/<next integer version>`, so a server polling DIR picks it up without
a restart and never sees half a model. A model that fails is refused with the reason (exit code 1)
and DIR is left untouched.

`export` writes one served version as a gzipped tarball holding `<NAME>/<VERSION>/saved_model.pb,
variables/, assets/...` (owner root), written aside and renamed into place: untar it into a
directory and point TF Serving's `--model_base_path` at `<that dir>/<NAME>`.

Labels live in a TF Serving model config file (`<DIR>/models.config` unless --config-file), the
text ModelServerConfig that `--model_config_file` reads (with
`--model_config_file_poll_wait_seconds` > 0 the server picks up changes). With labels the model's
version policy is `specific`: the latest version plus every labelled one, so the labelled versions
stay loaded. Rollback without --label re-publishes VERSION as the next version (so clients that ask
for the latest get it again, history kept); with --label it points that label at VERSION.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from serving import layout, validate
from serving.convert import saved_model_dir
from serving.errors import PushError
from serving.process import SERVER_AUTO, SERVER_CHOICES

logger = logging.getLogger(__name__)

LABELS = ("stable", "canary")
CONFIG_FILE_NAME = "models.config"
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


# --------------------------------------------------------------------------------------------
# The model config file (labels).


def update_model_config(
    config_path: str | os.PathLike[str],
    serving_dir: str | os.PathLike[str],
    model_name: str,
    *,
    set_labels: Mapping[str, int] | None = None,
) -> bool:
    """Brings `model_name`'s entry in the config file up to date with the serving directory.

    Sets `set_labels`, drops labels whose version is gone, and makes the version policy
    `specific` = latest version + labelled versions. Other models in the file are kept. The file
    is written only when it exists or labels are set, and is replaced
    atomically. Returns True when the file was written.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = Path(config_path)
    model_dir = Path(serving_dir).resolve() / model_name
    with layout.locked(path.parent / f".{path.name}.lock"):
        if not path.is_file() and not set_labels:
            return False
        config = model_server_config_pb2.ModelServerConfig()
        if path.is_file():
            try:
                text_format.Parse(path.read_text(), config)
            except text_format.ParseError as error:
                raise PushError(f"{path} is not a text ModelServerConfig: {error}") from None
        if config.WhichOneof("config") == "custom_model_config":
            raise PushError(f"{path} uses custom_model_config; only model_config_list can carry labels")
        entry = next((m for m in config.model_config_list.config if m.name == model_name), None)
        if entry is None:
            entry = config.model_config_list.config.add(name=model_name)
        entry.base_path = str(model_dir)
        entry.model_platform = "tensorflow"
        versions = layout.list_versions(model_dir)
        labels = {k: v for k, v in entry.version_labels.items() if v in versions}
        for label, version in (set_labels or {}).items():
            if version not in versions:
                raise PushError(f"cannot label version {version} of {model_name!r}: it is not in {model_dir}")
            labels[label] = version
        entry.version_labels.clear()
        for label in sorted(labels):
            entry.version_labels[label] = labels[label]
        wanted = sorted(set(labels.values()) | ({versions[-1]} if versions else set()))
        entry.model_version_policy.Clear()
        if labels:
            entry.model_version_policy.specific.versions.extend(wanted)
        else:
            entry.model_version_policy.latest.num_versions = 1
        with layout.atomic_file(path) as out:
            out.write(text_format.MessageToString(config).encode())
    logger.info("wrote %s: %s labels %s, versions %s", path, model_name, labels, wanted)
    return True


# --------------------------------------------------------------------------------------------
# push and rollback as functions.


@dataclass(frozen=True)
class PushResult:
    version: int
    path: str
    validation: validate.ValidationReport
    label: str | None
    config_file: str | None


def push_model(
    model: str | os.PathLike[str],
    serving_dir: str | os.PathLike[str],
    model_name: str,
    *,
    label: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    server: str = SERVER_AUTO,
    signature_names: Sequence[str] = (),
    max_loading_seconds: float = 120.0,
    input_tensors: Sequence[str] = (),
    output_tensors: Sequence[str] = (),
) -> PushResult:
    """Validates `model` in a model server and publishes it as the next version.

    `input_tensors` / `output_tensors` name a frozen graph's tensors (default: inspect's guess).
    Raises PushError (the serving directory untouched) when the model cannot be read or fails
    validation.
    """
    layout.check_model_name(model_name)
    if label is not None and label not in LABELS:
        raise PushError(f"label {label!r} is not one of {', '.join(LABELS)}")
    config_path = Path(config_file) if config_file else Path(serving_dir) / CONFIG_FILE_NAME
    with saved_model_dir(model, input_tensors=input_tensors, output_tensors=output_tensors) as source:
        report = validate.validate_saved_model(
            source,
            model_name=model_name,
            server=server,
            signature_names=signature_names,
            max_loading_seconds=max_loading_seconds,
        )
        if not report.ok:
            raise PushError(f"refused {model}: {report.reason}")
        published = layout.publish(source, serving_dir, model_name)
    written = update_model_config(
        config_path, serving_dir, model_name, set_labels={label: published.version} if label else None
    )
    return PushResult(
        version=published.version,
        path=published.path,
        validation=report,
        label=label,
        config_file=str(config_path) if written else None,
    )


@dataclass(frozen=True)
class RollbackResult:
    to_version: int
    new_version: int | None  # the re-published version, None when a label was moved
    label: str | None
    config_file: str | None


def rollback(
    serving_dir: str | os.PathLike[str],
    model_name: str,
    to_version: int,
    *,
    label: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
) -> RollbackResult:
    """Serves `to_version` again: points `label` at it, or (no label) re-publishes it as the next version."""
    layout.check_model_name(model_name)
    _, source = layout.find_version(Path(serving_dir) / model_name, to_version)
    if not layout.is_complete_saved_model(source):
        raise PushError(f"{source} is not a complete SavedModel; pick another version")
    config_path = Path(config_file) if config_file else Path(serving_dir) / CONFIG_FILE_NAME
    if label is not None:
        if label not in LABELS:
            raise PushError(f"label {label!r} is not one of {', '.join(LABELS)}")
        update_model_config(config_path, serving_dir, model_name, set_labels={label: to_version})
        return RollbackResult(to_version, None, label, str(config_path))
    published = layout.publish(source, serving_dir, model_name)
    written = update_model_config(config_path, serving_dir, model_name)
    return RollbackResult(to_version, published.version, None, str(config_path) if written else None)


@dataclass(frozen=True)
class ExportResult:
    version: int
    path: str
    size_bytes: int
    files: int


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def export_version(
    serving_dir: str | os.PathLike[str],
    model_name: str,
    output: str | os.PathLike[str],
    *,
    version: int | None = None,
) -> ExportResult:
    """Writes `version` (default: the latest) of `model_name` as a gzipped tarball at `output`.

    Inside: `<model_name>/<version>/` with everything the version holds, so untarring it into a
    directory gives TF Serving a model base path. Written aside and renamed: `output` is either
    the old file (or absent) or the whole new tarball.
    """
    layout.check_model_name(model_name)
    version, source = layout.find_version(Path(serving_dir) / model_name, version)
    problem = layout.saved_model_problem(source)
    if problem is not None:
        raise PushError(f"{source} is not a complete SavedModel ({problem}); export another version")
    target = Path(output)
    if target.is_dir():
        raise PushError(f"{target} is a directory: expected a file name such as {target / 'model.tar.gz'}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with layout.atomic_file(target) as out:
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            tar.add(source, arcname=f"{model_name}/{version}", filter=_as_root)
            files = sum(1 for member in tar.getmembers() if member.isfile())
    logger.info("exported %s as %s (%d files)", source, target, files)
    return ExportResult(version=version, path=str(target), size_bytes=target.stat().st_size, files=files)


# --------------------------------------------------------------------------------------------
# CLI.


def _push_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.push",
        description="Validate a model in a model server, then publish it as the next version. "
        "See also: python -m serving.push rollback --help, python -m serving.push export --help",
    )
    parser.add_argument("model", help="SavedModel directory, .keras or .h5 file, or TF1 frozen GraphDef .pb")
    _common(parser)
    parser.add_argument(
        "--input-tensors", action="append", default=[], metavar="NAMES",
        help="frozen graph only: input tensor names, comma separated or repeated (default: its Placeholders)",
    )
    parser.add_argument(
        "--output-tensors", action="append", default=[], metavar="NAMES",
        help="frozen graph only: output tensor names (default: its one sink, see python -m serving.inspect)",
    )
    parser.add_argument("--label", choices=LABELS, help="point this version label at the new version")
    parser.add_argument(
        "--server", choices=SERVER_CHOICES, default=SERVER_AUTO,
        help="model server to validate with (auto: tensorflow_model_server if on PATH, else embedded)",
    )
    parser.add_argument(
        "--signature", action="append", default=[], dest="signatures",
        help="signature to query (repeatable); default: every signature a request can be built for",
    )
    parser.add_argument("--max-load-seconds", type=float, default=120.0, help="load deadline (default 120)")
    return parser


def _rollback_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.push rollback",
        description="Serve an earlier version again: re-publish it as the next version, "
        "or with --label point that label at it.",
    )
    _common(parser)
    parser.add_argument("--to", type=int, required=True, dest="to_version", help="the version to serve again")
    parser.add_argument("--label", choices=LABELS, help="move this label instead of re-publishing")
    return parser


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.push export",
        description="Write a served version as a .tar.gz holding <model-name>/<version>/saved_model.pb, "
        "variables/, ... (untar it and point --model_base_path at <dir>/<model-name>).",
    )
    _common(parser, config=False)
    parser.add_argument("--version", type=int, help="the version to export (default: the latest)")
    parser.add_argument("--output", default="model.tar.gz", help="tarball to write (default model.tar.gz)")
    return parser


def _common(parser: argparse.ArgumentParser, config: bool = True) -> None:
    parser.add_argument("--serving-dir", required=True, help="directory holding <model-name>/<version>/")
    parser.add_argument("--model-name", required=True, help="the served model's name")
    if config:
        parser.add_argument(
            "--config-file", help=f"model config file for labels (default <serving-dir>/{CONFIG_FILE_NAME})"
        )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")


def _names(values: Sequence[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = args_list[0] if args_list and args_list[0] in ("rollback", "export") else "push"
    parser = {"rollback": _rollback_parser, "export": _export_parser, "push": _push_parser}[command]()
    args = parser.parse_args(args_list if command == "push" else args_list[1:])
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if command == "export":
            exported = export_version(args.serving_dir, args.model_name, args.output, version=args.version)
            print(f"exported version {exported.version} of {args.model_name!r} to {exported.path} "
                  f"({exported.files} files, {exported.size_bytes} bytes)")
            return EXIT_OK
        if command == "rollback":
            result = rollback(
                args.serving_dir, args.model_name, args.to_version, label=args.label, config_file=args.config_file
            )
            if result.label:
                print(f"label {result.label!r} of {args.model_name!r} now points at version {result.to_version} "
                      f"({result.config_file})")
            else:
                print(f"version {result.to_version} of {args.model_name!r} re-published as version "
                      f"{result.new_version} (now the latest)")
            return EXIT_OK
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        pushed = push_model(
            args.model,
            args.serving_dir,
            args.model_name,
            label=args.label,
            config_file=args.config_file,
            server=args.server,
            signature_names=args.signatures,
            max_loading_seconds=args.max_load_seconds,
            input_tensors=_names(args.input_tensors),
            output_tensors=_names(args.output_tensors),
        )
    except (PushError, layout.LayoutError) as error:
        print(f"push: {error}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"validated: {pushed.validation.summary()}")
    for skipped in pushed.validation.skipped:
        print(f"  not queried: {skipped}")
    print(f"pushed {args.model} as version {pushed.version} of {args.model_name!r} at {pushed.path}")
    if pushed.label:
        print(f"label {pushed.label!r} -> version {pushed.version} in {pushed.config_file}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
