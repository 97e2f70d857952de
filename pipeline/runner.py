"""Running a stage: its function called with its files, wildcards and params as its entry in the stage
table says (pipeline/stages.py), from a Snakemake script or from `merflow stage`; output to the rule's log,
user errors shown plainly; a record of what made the artifact beside it when its format holds none."""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.artifacts import write_sidecar
from pipeline.baselines import seeds_of
from pipeline.errors import MerflowError, ParamsError
from pipeline.plan import stage_files
from pipeline.stages import STAGES, Dependency, FromWildcard, Stage, stage_params


def run_logged(log_path: str | os.PathLike, stage: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Call `stage(*args, **kwargs)` with stdout/stderr going to `log_path`.

    A MerflowError (bad input, bad params) is written to the log and to the console as one clear
    message, and the process exits 1; anything else is a bug and keeps its traceback.
    """
    console = sys.__stderr__
    os.makedirs(os.path.dirname(os.fspath(log_path)) or ".", exist_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            stage(*args, **kwargs)
        except MerflowError as error:
            print(f"merflow error: {error}", file=log)
            print(f"merflow error: {error}\n(log: {log_path})", file=console)
            raise SystemExit(1) from None
        except Exception:
            traceback.print_exc(file=log)
            raise


def stage_function(stage: Stage) -> Callable[..., None]:
    module, name = stage.function.split(":")
    return getattr(importlib.import_module(module), name)


def stage_arguments(stage: Stage, files: Mapping[str, Any], wildcards: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments a stage's function takes besides its params, by name: every input but a Dependency;
    every output, or `out_dir` (the folder of a per-fold stage's files) for a function that takes it; and
    the wildcards it takes that are not params (fold, protocol, layout)."""
    taken = inspect.signature(stage_function(stage)).parameters
    arguments: dict[str, Any] = {name: files.get(name) for name, value in stage.inputs.items()
                                 if not isinstance(value, Dependency)}
    if "out_dir" in taken and "out_dir" not in stage.outputs:
        arguments["out_dir"] = Path(files[stage.audited]).parent
    else:
        arguments.update({name: files[name] for name in stage.outputs})
    arguments = {name: Path(value) if isinstance(value, str) else value for name, value in arguments.items()}
    from_params = {spec.name for spec in stage.params if isinstance(spec, FromWildcard)}
    arguments.update({name: int(value) if name in ("fold", "seed") else str(value)
                      for name, value in wildcards.items() if name in taken and name not in from_params})
    return arguments


def call_stage(stage: Stage, files: Mapping[str, Any], wildcards: Mapping[str, Any], kwargs: Mapping[str, Any],
               runner: Callable[..., None] | None = None) -> None:
    """Call the stage's function with its files, wildcards and params (through `runner`, e.g. run_logged
    with its log file bound, when given), then record its artifact's provenance beside it if the
    artifact cannot hold it (a CSV, JSON, HTML or folder)."""
    arguments = {**stage_arguments(stage, files, wildcards), **kwargs}
    function = stage_function(stage)
    if runner is None:
        function(**arguments)
    else:
        runner(function, **arguments)
    if not stage.records_params():
        recorded = {**kwargs, **({"fold": int(wildcards["fold"])} if "fold" in wildcards else {})}
        write_sidecar(files[stage.audited], stage.name, recorded,
                      {name: _paths(files.get(name)) for name in stage.inputs})


def _paths(value: Any) -> str | list[str] | None:
    """An input as call_stage got it (a path, a list of paths, Snakemake's named list, or None) as str or
    list of str."""
    if value is None or isinstance(value, str | os.PathLike):
        return None if value is None else os.fspath(value)
    return [os.fspath(v) for v in value]


def run_stage(params: Mapping, stage: str, *, ds: str | None = None, protocol: str | None = None,
              method: str | None = None, seed: int | None = None, fold: int | None = None) -> None:
    """Run one stage for one dataset (and protocol, method, seed, fold where they apply), as Snakemake would.
    A per-fold stage's seed defaults to the one its method runs with first (seeds_of)."""
    entry = STAGES[stage]
    if seed is None and "seed" in entry.wildcards:
        seed = seeds_of(params, method or entry.method or stage)[0]
    given = {"layout": ds, "ds": ds, "protocol": protocol, "method": method, "seed": seed, "fold": fold}
    missing = [name for name in entry.wildcards if given[name] is None]
    if missing:
        flags = {"layout": "--dataset", "ds": "--dataset"}
        raise ParamsError(f"merflow stage {stage} needs {', '.join(flags.get(n, '--' + n) for n in missing)}")
    wildcards = {name: given[name] for name in entry.wildcards}
    call_stage(entry, stage_files(entry, params, wildcards), wildcards,
               stage_params(params, stage, ds=ds, method=method, seed=seed))


def run_snakemake_job(smk: Any) -> None:
    """What workflow/scripts/stage.py does: the rule's stage (an ablation_* rule runs its stage on the
    grid's paths) on the rule's named files, logged."""
    base = smk.rule.removeprefix("ablation_")
    # The grid's flow network rules stand for the network's entries: {method}_folds, {method}.
    stage = STAGES[{"flownet_folds": f"{smk.wildcards.get('method')}_folds",
                    "flownet": smk.wildcards.get("method")}.get(base, base)]
    files = {name: value for name, value in [*smk.input.items(), *smk.output.items()]
             if name in stage.inputs or name in stage.outputs}
    wildcards = {name: value for name, value in smk.wildcards.items() if name in stage.wildcards}
    call_stage(stage, files, wildcards, smk.params.p, runner=functools.partial(run_logged, smk.log[0]))
