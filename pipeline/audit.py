"""`merflow audit`: is every artifact still what params.yaml and its inputs would make now?

Every artifact records its provenance (pipeline/artifacts.py: the HDF5 stores and model.pt in the
file, every other one in `<artifact>.provenance.json` beside it), and is checked against the present
without rerunning anything:

- params: the params it records against `stage_params` of the current params.yaml (plus its fold);
- inputs: the files it was made from against those the current params would make it from (Table 2
  made from another configuration's folds reads other files), and each one's recorded checksum
  against the file on disk now;
- upstream: an artifact made from an input that is itself out of date is out of date too, even when
  its own params and checksums still match (the input will be remade);
- itself: a record beside a file holds the file's checksum, so a file changed or replaced since is
  stale.

An artifact with no record (made before records were kept, or its record deleted) is `not recorded`.
Code changes are not judged here: Snakemake and DVC rerun a stage when a pipeline/ module it runs
changes (its code files are rule inputs and DVC deps); the audit shows the merflow version an artifact
was made with.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py

from pipeline import __version__, paths
from pipeline.artifacts import path_sha256, read_provenance, read_sidecar, sidecar_path
from pipeline.plan import input_paths, output_files, run_key, wildcard_values
from pipeline.stages import STAGES, stage_params

UP_TO_DATE, STALE, MISSING, NOT_RECORDED = "up to date", "stale", "missing", "not recorded"


@dataclass
class InputCheck:
    name: str
    path: str
    recorded_sha256: str
    status: str                   # "unchanged", "changed", "missing" or "stale" (its artifact is out of date)


@dataclass
class ArtifactAudit:
    stage: str                    # e.g. "tensors casme2", "train casme2 kfold5 rcnn fold0"
    artifact: str
    status: str                   # UP_TO_DATE, STALE, MISSING or NOT_RECORDED
    reasons: list[str] = field(default_factory=list)
    params: dict[str, Any] | None = None          # as recorded in the artifact
    inputs: list[InputCheck] = field(default_factory=list)
    merflow_version: str | None = None


def artifact_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance an artifact records (its record beside it, HDF5 attributes, or model.pt's
    "provenance"), or None."""
    path = Path(path)
    if sidecar_path(path).is_file():
        return read_sidecar(path)
    if path.suffix == ".pt":
        import torch  # only here: importing torch takes seconds
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        prov = dict(checkpoint.get("provenance") or {})
        for key in ("params", "inputs", "upstream"):
            if isinstance(prov.get(key), str):
                prov[key] = json.loads(prov[key])
        return prov or None
    if h5py.is_hdf5(path):
        prov = read_provenance(path)
        return prov if "stage" in prov else None
    return None


def params_differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """'key: recorded -> current' for every key whose value differs (JSON-equal values are equal)."""
    def canonical(value: Any) -> str:
        return json.dumps(value, sort_keys=True)
    return [f"{key}: {json.dumps(recorded.get(key))} -> {json.dumps(current.get(key))}"
            for key in sorted(set(recorded) | set(current))
            if canonical(recorded.get(key)) != canonical(current.get(key))]


def _recorded_inputs(prov: Mapping) -> list[tuple[str, str, str]]:
    """(name, path, sha256) of every input a record names (an input that gathers files names several)."""
    found = []
    for name, recorded in (prov.get("inputs") or {}).items():
        for entry in recorded if isinstance(recorded, list) else [recorded]:
            found.append((name, entry["path"], entry["sha256"]))
    return found


def _listed(paths: list[str], shown: int = 3) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def input_set_differences(recorded: list[str], expected: list[str]) -> list[str]:
    """Why an artifact's inputs are not those the current params name: files it read that they do not,
    and files they name that it did not read."""
    made, now = {os.path.normpath(p) for p in recorded}, {os.path.normpath(p) for p in expected}
    reasons = []
    if made - now:
        reasons.append(f"made from {len(made - now)} file(s) the current params do not read: "
                       + _listed(sorted(made - now)))
    if now - made:
        reasons.append(f"the current params read {len(now - made)} file(s) it was not made from: "
                       + _listed(sorted(now - made)))
    return reasons


def audit_artifact(stage: str, artifact: str | os.PathLike, expected_params: Mapping[str, Any] | None,
                   stale_artifacts: set[str] = frozenset(), expected_inputs: list[str] | None = None,
                   checksum: Callable[[str], str] = path_sha256) -> ArtifactAudit:
    """One artifact against the current params and the files on disk; `stale_artifacts` are paths
    already found out of date (an input among them makes this one stale too); `expected_inputs`, the
    files the current params would make it from."""
    artifact = os.fspath(artifact)
    if not os.path.exists(artifact):
        return ArtifactAudit(stage, artifact, MISSING, ["not made yet"])
    prov = artifact_provenance(artifact) if os.path.isfile(artifact) or sidecar_path(artifact).is_file() else None
    if prov is None:
        return ArtifactAudit(stage, artifact, NOT_RECORDED, ["exists; records no provenance"])
    result = ArtifactAudit(stage, artifact, UP_TO_DATE, params=prov.get("params"),
                           merflow_version=prov.get("merflow_version"))
    own = prov.get("artifact")
    if own and path_sha256(artifact) != own["sha256"]:
        result.reasons.append(f"{artifact} changed since its record ({sidecar_path(artifact)}) was written")
    if expected_params is not None:
        differences = params_differences(prov.get("params") or {}, expected_params)
        if differences:
            result.reasons.append("params differ from the current params: " + "; ".join(differences))
    recorded = _recorded_inputs(prov)
    if expected_inputs is not None:
        result.reasons.extend(input_set_differences([path for _, path, _ in recorded], expected_inputs))
    for name, path, sha in recorded:
        if not os.path.exists(path):
            status = "missing"
        elif os.path.normpath(path) in stale_artifacts:
            status = "stale"
        else:
            status = "unchanged" if checksum(path) == sha else "changed"
        result.inputs.append(InputCheck(name, path, sha, status))
        if status != "unchanged":
            result.reasons.append(f"input {name} ({path}) is {status}"
                                  + (" since this artifact was made" if status == "changed" else ""))
    if result.reasons:
        result.status = STALE
    return result


def fold_numbers_now(ds: str, protocol: str) -> list[int]:
    """Leave-one-subject-out's folds of a dataset, from its saved folds file (none before there is one)."""
    folds_csv = Path(paths.FOLDS.format(ds=ds, protocol=protocol))
    if folds_csv.is_file():
        from pipeline.protocols import fold_numbers
        return fold_numbers(folds_csv)
    return []


def audit_pipeline(params: Mapping) -> list[ArtifactAudit]:
    """Every artifact of the pipeline params describe, in the stage table's order (upstream first)."""
    results: list[ArtifactAudit] = []
    stale: set[str] = set()
    # An input read by many artifacts (a dataset's aligned.h5 by every fold of every baseline) is
    # checksummed once per audit.
    checksum = functools.cache(path_sha256)
    for stage in STAGES.values():
        for wildcards in wildcard_values(stage, params, fold_numbers_now):
            label = " ".join([stage.name, *(f"{w}{v}" if w in ("seed", "fold") else str(v)
                                            for w, v in wildcards.items())])
            outputs = output_files(stage, params, wildcards)
            expected = stage_params(params, stage.name, ds=wildcards.get("ds"), method=wildcards.get("method"),
                                    seed=wildcards.get("seed"))
            if "fold" in wildcards:
                expected = {**expected, "fold": wildcards["fold"]}
            # a record beside the artifact lists every input it read
            expected_inputs = None if stage.records_params() else input_paths(stage, params, wildcards,
                                                                               fold_numbers_now)
            entry = audit_artifact(label, outputs[stage.audited], expected, stale, expected_inputs, checksum)
            if entry.status in (STALE, MISSING):
                stale.update(os.path.normpath(path) for path in outputs.values())
            results.append(entry)
    return results


def format_audit(results: list[ArtifactAudit], verbose: bool = True) -> str:
    """Per stage: the artifact and its status, then (verbose) its params, inputs and the reasons."""
    width = max((len(r.stage) for r in results), default=0)
    lines = []
    for r in results:
        lines.append(f"{r.stage:<{width}}  {r.artifact}  [{r.status}]")
        if not verbose or r.status in (MISSING, NOT_RECORDED):
            continue
        version = f" (made by merflow {r.merflow_version}, now {__version__})" \
            if r.merflow_version and r.merflow_version != __version__ else ""
        lines.append(f"{'':<{width}}    params: {json.dumps(r.params, sort_keys=True)}{version}")
        for i in r.inputs:
            lines.append(f"{'':<{width}}    input {i.name}: {i.path} sha256 {i.recorded_sha256[:12]} {i.status}")
        for reason in r.reasons:
            lines.append(f"{'':<{width}}    ! {reason}")
    counts = {status: sum(r.status == status for r in results) for status in (UP_TO_DATE, STALE, MISSING,
                                                                             NOT_RECORDED)}
    lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
    return "\n".join(lines)


def run_line(params: Mapping) -> str:
    """Where the current params' results are made (their run folder) and published."""
    return f"run: {paths.RUN_DIR.format(run=run_key(params))} (published to {paths.TABLE2}, {paths.REPORT})"


def audit_json(results: list[ArtifactAudit]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)
