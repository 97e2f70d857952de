"""A stage's code dependencies: the source files its function's module imports, followed transitively
(imports inside functions too), plus the data files its entry names. Editing one reruns the stage (the
Snakemake rules list them as inputs, DVC as deps)."""

from __future__ import annotations

import ast
import functools
import os
from pathlib import Path

from pipeline.stages import STAGES, Stage

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _module_file(module: str) -> Path | None:
    path = PACKAGE_ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(file: Path, module: str) -> set[str]:
    """The pipeline modules a source file imports anywhere (at the top or inside a function)."""
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return {name for name in found if name.split(".")[0] == "pipeline"}


@functools.cache
def module_closure(module: str) -> tuple[str, ...]:
    """The source files of `module` and of every pipeline module it imports, transitively (subpackages'
    __init__ files included), relative to the repository root."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for end in range(1, len(parts) + 1):
            name = ".".join(parts[:end])
            file = _module_file(name)
            if file is not None and name not in seen:
                seen[name] = file
                todo.extend(imported_modules(file, name))
    # pipeline/__init__.py holds only the version, which every artifact records: a new version is no edit.
    return tuple(sorted(os.fspath(file.relative_to(PACKAGE_ROOT)) for name, file in seen.items() if name != "pipeline"))


def code_deps(stage: str | Stage) -> list[str]:
    """The source and data files a stage runs, relative to the repository root."""
    entry = STAGES[stage] if isinstance(stage, str) else stage
    return [*module_closure(entry.function.split(":")[0]),
            *(path for path in entry.data if (PACKAGE_ROOT / path).exists())]
