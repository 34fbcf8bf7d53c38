"""`python -m serving.inspect PATH`: what a SavedModel, a served model or a TF1 frozen graph takes and gives.

PATH is a SavedModel directory, a pushed version `<serving_dir>/<model>/<version>`, a model
directory `<serving_dir>/<model>` (its versions are listed and the latest inspected) or a TF1
frozen GraphDef `.pb` file. For a SavedModel: each MetaGraph's tags, its signatures with method
names, inputs and outputs (DataType, shape with -1 for any size, graph tensor), the class names
a classifier exports (`assets/class_names.txt`) and the warmup records TF Serving replays
(`assets.extra/tf_serving_warmup_requests`: how many, which signatures). For a frozen graph:
its likely inputs (Placeholder ops) and outputs (sink ops: nothing consumes their outputs),
the guess `python -m serving.push` uses when no tensor names are given. `--json` prints the
same as one stable JSON document (sorted keys).

The core (`inspect_path`, `frozen_graph_io`, `to_json`, `format_text`) is plain functions over
files; `main` is the CLI. Signatures are read by `serving.saved_model`, the reader the server uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from serving import layout
from serving.errors import UnservableModel
from serving.saved_model import (
    CLASS_NAMES_ASSET,
    WARMUP_FILE,
    dtype_enum_name,
    iter_warmup_logs,
    read_class_names,
    read_meta_graphs,
    tensor_dims,
    warmup_signature_names,
)

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_UNREADABLE = 1
EXIT_USAGE = 2

# Ops that end a graph without being a model output: bookkeeping, checks, variables and saving.
_NOT_OUTPUTS = frozenset({
    "NoOp", "Const", "Assert", "Print", "PrintV2", "Placeholder", "PlaceholderWithDefault",
    "VariableV2", "Variable", "VarHandleOp", "Assign", "AssignAdd", "AssignSub", "AssignVariableOp",
    "SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "MergeV2Checkpoints", "ShardedFilename",
    "VarIsInitializedOp", "IsVariableInitialized", "ReadVariableOp",
})
_INPUT_OPS = frozenset({"Placeholder"})


class InspectError(ValueError):
    """PATH is not something inspect reads, or it does not parse; the message says which and why."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class TensorDesc:
    """One signature input/output (key = its signature key) or one graph tensor (key = tensor name)."""

    key: str
    tensor: str
    dtype: str  # DataType enum name, e.g. DT_FLOAT
    shape: tuple[int, ...] | None  # -1 for a dimension of any size; None for an unknown rank

    def to_json(self) -> dict[str, Any]:
        return {"tensor": self.tensor, "dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}

    def describe(self) -> str:
        shape = "unknown rank" if self.shape is None else str(list(self.shape))
        return f"{self.key}: {self.dtype} {shape}" + (f"  ({self.tensor})" if self.tensor != self.key else "")


@dataclass(frozen=True)
class SignatureDesc:
    name: str
    method_name: str
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]


@dataclass(frozen=True)
class MetaGraphDesc:
    tags: tuple[str, ...]
    signatures: tuple[SignatureDesc, ...]


@dataclass(frozen=True)
class WarmupDesc:
    records: int
    signatures: dict[str, int]  # signature name -> records calling it
    kinds: dict[str, int]  # predict_log, classify_log, ... -> records


@dataclass(frozen=True)
class SavedModelReport:
    path: str
    meta_graphs: tuple[MetaGraphDesc, ...]
    class_names: tuple[str, ...] | None
    warmup: WarmupDesc | None
    model_name: str | None = None  # set when PATH is (or holds) an integer version directory
    version: int | None = None
    versions: tuple[int, ...] = ()


@dataclass(frozen=True)
class FrozenGraphReport:
    path: str
    nodes: int
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]


Report = SavedModelReport | FrozenGraphReport


# --------------------------------------------------------------------------------------------
# SavedModels


def _tensors(infos: Any) -> tuple[TensorDesc, ...]:
    return tuple(
        TensorDesc(key, infos[key].name, dtype_enum_name(infos[key].dtype), tensor_dims(infos[key])) for key in sorted(infos)
    )


def _warmup(export_dir: Path) -> WarmupDesc | None:
    if not (export_dir / WARMUP_FILE).is_file():
        return None
    signatures: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    records = 0
    try:
        for log in iter_warmup_logs(export_dir):
            records += 1
            kinds[log.WhichOneof("log_type") or "empty"] += 1
            signatures.update(warmup_signature_names(log))
    except Exception as error:  # noqa: BLE001 - tf.errors.DataLossError, DecodeError: a broken file
        raise InspectError(
            f"{export_dir / WARMUP_FILE} is not a TFRecord file of PredictionLog records "
            f"(record {records + 1}: {type(error).__name__})",
            EXIT_UNREADABLE,
        ) from None
    return WarmupDesc(records, dict(sorted(signatures.items())), dict(sorted(kinds.items())))


def inspect_saved_model(export_dir: str | os.PathLike[str]) -> SavedModelReport:
    """Tags, signatures, class names and warmup records of the SavedModel in `export_dir`."""
    path = Path(export_dir)
    try:
        meta_graphs = tuple(
            MetaGraphDesc(
                tags,
                tuple(
                    SignatureDesc(name, definition.method_name, _tensors(definition.inputs), _tensors(definition.outputs))
                    for name, definition in signatures.items()
                ),
            )
            for tags, signatures in read_meta_graphs(path)
        )
    except UnservableModel as error:
        raise InspectError(error.message, EXIT_UNREADABLE) from None
    names = read_class_names(path)
    version = layout.parse_version(path.resolve().name)
    model_dir = path.resolve().parent
    return SavedModelReport(
        path=str(path),
        meta_graphs=meta_graphs,
        class_names=tuple(names) if names is not None else None,
        warmup=_warmup(path),
        model_name=model_dir.name if version is not None else None,
        version=version,
        versions=tuple(layout.list_versions(model_dir)) if version is not None else (),
    )


# --------------------------------------------------------------------------------------------
# TF1 frozen graphs


def read_graph_def(path: str | os.PathLike[str]) -> Any:
    """The GraphDef in a binary `.pb` file; InspectError when it is not one."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import graph_pb2

    file = Path(path)
    graph_def = graph_pb2.GraphDef()
    try:
        graph_def.ParseFromString(file.read_bytes())
    except (DecodeError, RuntimeError, OSError, ValueError) as error:
        raise InspectError(f"{file} is not a frozen GraphDef: {error}", EXIT_UNREADABLE) from None
    if not graph_def.node or any(not node.op for node in graph_def.node):
        raise InspectError(f"{file} is not a frozen GraphDef: it holds no graph nodes", EXIT_UNREADABLE)
    return graph_def


def frozen_graph_io(graph_def: Any) -> tuple[tuple[TensorDesc, ...], tuple[TensorDesc, ...]]:
    """(likely inputs, likely outputs) of a GraphDef, each tensor with its DataType and shape.

    Inputs are the outputs of Placeholder ops; outputs are the outputs of sink ops, whose outputs
    no node consumes as data, less bookkeeping ops (NoOp, Const, Assert, variables, savers).
    Dtypes and shapes come from importing the graph (TF's shape inference).
    """
    import tensorflow as tf

    consumed = {
        name.lstrip("^").split(":")[0] for node in graph_def.node for name in node.input if not name.startswith("^")
    }
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.compat.v1.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as error:
            raise InspectError(f"the GraphDef does not import: {str(error).splitlines()[0]}", EXIT_UNREADABLE) from None

    def describe(op: Any) -> list[TensorDesc]:
        return [
            TensorDesc(
                t.name,
                t.name,
                dtype_enum_name(t.dtype.as_datatype_enum),
                None if t.shape.rank is None else tuple(-1 if d is None else int(d) for d in t.shape.as_list()),
            )
            for t in op.outputs
        ]

    inputs, outputs = [], []
    for node in graph_def.node:
        op = graph.get_operation_by_name(node.name)
        if node.op in _INPUT_OPS:
            inputs += describe(op)
        elif node.name not in consumed and node.op not in _NOT_OUTPUTS:
            outputs += describe(op)
    return tuple(inputs), tuple(outputs)


def inspect_frozen_graph(path: str | os.PathLike[str]) -> FrozenGraphReport:
    graph_def = read_graph_def(path)
    try:
        inputs, outputs = frozen_graph_io(graph_def)
    except InspectError as error:
        raise InspectError(f"{path}: {error}", error.exit_code) from None
    return FrozenGraphReport(str(path), len(graph_def.node), inputs, outputs)


# --------------------------------------------------------------------------------------------
# Any PATH


def inspect_path(path: str | os.PathLike[str]) -> Report:
    """Inspects a SavedModel / version dir, a model dir (its latest version) or a frozen `.pb`."""
    target = Path(path)
    expected = (
        "expected a SavedModel directory (with saved_model.pb), a model directory holding integer "
        "version directories, or a TF1 frozen GraphDef .pb file"
    )
    if target.is_file():
        if target.name == "saved_model.pb":
            return inspect_saved_model(target.parent)
        if target.suffix == ".pb":
            return inspect_frozen_graph(target)
        raise InspectError(f"{target} is a file but not a .pb: {expected}")
    if target.is_dir():
        if (target / "saved_model.pb").is_file():
            return inspect_saved_model(target)
        if layout.list_versions(target):
            return inspect_saved_model(layout.find_version(target)[1])
        raise InspectError(f"{target} has no saved_model.pb and no integer version directories: {expected}")
    raise InspectError(f"{target} does not exist: {expected}")


def to_json(report: Report) -> dict[str, Any]:
    """The machine-readable document `--json` prints (its keys are stable)."""
    if isinstance(report, FrozenGraphReport):
        return {
            "kind": "frozen_graph",
            "path": report.path,
            "nodes": report.nodes,
            "inputs": [t.to_json() for t in report.inputs],
            "outputs": [t.to_json() for t in report.outputs],
        }
    return {
        "kind": "saved_model",
        "path": report.path,
        "model": None if report.model_name is None else {
            "name": report.model_name, "version": report.version, "versions": list(report.versions),
        },
        "meta_graphs": [
            {
                "tags": list(meta.tags),
                "signatures": {
                    sig.name: {
                        "method_name": sig.method_name,
                        "inputs": {t.key: t.to_json() for t in sig.inputs},
                        "outputs": {t.key: t.to_json() for t in sig.outputs},
                    }
                    for sig in meta.signatures
                },
            }
            for meta in report.meta_graphs
        ],
        "class_names": None if report.class_names is None else list(report.class_names),
        "warmup": None if report.warmup is None else {
            "records": report.warmup.records, "signatures": report.warmup.signatures, "kinds": report.warmup.kinds,
        },
    }


def format_text(report: Report) -> str:
    """The human-readable listing the CLI prints."""
    lines: list[str] = []
    if isinstance(report, FrozenGraphReport):
        lines.append(f"TF1 frozen GraphDef: {report.path} ({report.nodes} nodes)")
        lines.append("likely inputs (Placeholder ops):")
        lines += [f"  {t.describe()}" for t in report.inputs] or ["  none"]
        lines.append("likely outputs (sink ops: no node consumes them):")
        lines += [f"  {t.describe()}" for t in report.outputs] or ["  none"]
        return "\n".join(lines)
    lines.append(f"SavedModel: {report.path}")
    if report.model_name is not None:
        lines.append(
            f"model {report.model_name!r} version {report.version} "
            f"(versions on disk: {', '.join(map(str, report.versions))})"
        )
    for meta in report.meta_graphs:
        lines.append(f"MetaGraph with tags: {', '.join(meta.tags) or '(none)'}")
        for sig in meta.signatures:
            lines.append(f"  signature {sig.name!r}  method {sig.method_name}")
            lines.append("    inputs:")
            lines += [f"      {t.describe()}" for t in sig.inputs] or ["      none"]
            lines.append("    outputs:")
            lines += [f"      {t.describe()}" for t in sig.outputs] or ["      none"]
    if report.class_names is None:
        lines.append(f"class names: none ({CLASS_NAMES_ASSET} is absent)")
    else:
        lines.append(f"class names ({CLASS_NAMES_ASSET}): {len(report.class_names)}: {', '.join(report.class_names)}")
    if report.warmup is None:
        lines.append(f"warmup records: none ({WARMUP_FILE} is absent)")
    else:
        calls = ", ".join(f"{name} x{count}" for name, count in report.warmup.signatures.items())
        lines.append(f"warmup records ({WARMUP_FILE}): {report.warmup.records}" + (f": {calls}" if calls else ""))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.inspect",
        description="Show what a model takes and gives: a SavedModel or pushed version directory "
        "(tags, signatures with method names, inputs/outputs with dtypes and shapes, class names, "
        "warmup records), a model directory (its versions, then the latest one) or a TF1 frozen "
        "GraphDef .pb (its likely input and output tensors).",
    )
    parser.add_argument("path", help="SavedModel dir, <serving_dir>/<model>[/<version>], or frozen graph .pb")
    parser.add_argument("--json", action="store_true", help="print one machine-readable JSON document")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        report = inspect_path(args.path)
    except InspectError as error:
        print(f"inspect: {error}", file=sys.stderr)
        return error.exit_code
    print(json.dumps(to_json(report), indent=2, sort_keys=True) if args.json else format_text(report))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
