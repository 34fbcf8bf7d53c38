"""Trainer module files: the built-in module's names and the checks made before anything runs.

A module file is TFX's Trainer contract, unchanged: a Python file with a top-level
`run_fn(fn_args)` that saves a SavedModel to `fn_args.serving_model_dir`. TFX packages it as a
wheel under the pipeline root (`<root>/_wheels/`), whose version is a hash of the module's
directory, so the Trainer's cache follows the code. No TensorFlow import here: the CLI checks a
module in milliseconds, without executing it.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

RUN_FN = "run_fn"
# The built-in trainer as a Python path (TFX's `run_fn=`): the code the installed package and the
# pipeline image carry.
BUILTIN_RUN_FN = "components.trainer.model.run_fn"
BUILTIN_MODULE_FILE = str(Path(__file__).resolve().with_name("model.py"))


class ModuleFileError(ValueError):
    """A module file that cannot be a Trainer module; the message names the file and what was expected."""


def is_builtin(module_file: str) -> bool:
    """True for the built-in trainer: no module file, or the built-in module's own path."""
    return not module_file or os.path.abspath(module_file) == BUILTIN_MODULE_FILE


def is_remote(path: str) -> bool:
    return "://" in path


def check_module_file(path: str) -> str:
    """The module file's absolute path (URIs as given) once it can be a Trainer module.

    Checks, without executing it: the file exists, is a `.py` file whose name is a Python module
    name (TFX imports it by that name from its wheel), parses, and binds `run_fn` at top level.
    A URI (gs://...) is only checked for its name: TFX copies it when packaging.
    """
    expected = f"expected a Python file defining a top-level {RUN_FN}(fn_args), TFX Trainer's module_file"
    name = os.path.basename(path.rstrip("/"))
    if not name.endswith(".py"):
        raise ModuleFileError(f"module file {path!r} is not a .py file: {expected}")
    if not name[: -len(".py")].isidentifier():
        raise ModuleFileError(
            f"module file {path!r}: {name[:-3]!r} is not a Python module name (TFX imports the module by "
            "its file name): rename it with letters, digits and '_' only"
        )
    if is_remote(path):
        return path
    absolute = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(absolute):
        raise ModuleFileError(f"module file {absolute} does not exist: {expected}")
    try:
        source = Path(absolute).read_text(encoding="utf-8")
        tree = ast.parse(source, filename=absolute)
    except (OSError, UnicodeDecodeError) as error:
        raise ModuleFileError(f"module file {absolute} cannot be read: {error}") from None
    except SyntaxError as error:
        raise ModuleFileError(f"module file {absolute} does not parse: line {error.lineno}: {error.msg}") from None
    if RUN_FN not in _top_level_names(tree):
        functions = sorted(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
        found = f" (it defines {', '.join(functions)})" if functions else ""
        raise ModuleFileError(f"module file {absolute} has no {RUN_FN}{found}: {expected}")
    return absolute


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at top level: functions, classes, assignments and imports."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):
            # e.g. `try: from x import run_fn except ImportError: def run_fn(...)`
            names.update(_top_level_names(ast.Module(body=_branches(node), type_ignores=[])))
    return names


def _branches(node: ast.If | ast.Try) -> list[ast.stmt]:
    body = list(node.body) + list(node.orelse)
    if isinstance(node, ast.Try):
        body += [stmt for handler in node.handlers for stmt in handler.body] + list(node.finalbody)
    return body
