"""`merflow audit`: is every artifact still what params.yaml and its inputs would make now?

An artifact that records provenance (the HDF5 stores and model.pt, see pipeline/artifacts.py) is
checked against the present, without rerunning anything:

- params: the params it records against `stage_params` of the current params.yaml (plus its fold);
- inputs: the sha256 it records for every input against the file on disk now;
- upstream: an artifact made from an input that is itself out of date is out of date too, even when
  its own params and checksums still match (the input will be remade).

Artifacts that record nothing (CSV, JSON, HTML) are listed with whether they exist. Code changes are
not judged here: Snakemake and DVC rerun a stage when a pipeline/ module it runs changes (its code
files are rule inputs and DVC deps); the audit shows the merflow version an artifact was made with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py

from pipeline import __version__, paths
from pipeline.artifacts import file_sha256, read_provenance
from pipeline.config import stage_params
from pipeline.stages import STAGES, output_files, wildcard_values

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
    """The provenance an artifact records (HDF5 attributes, or model.pt's "provenance"), or None."""
    path = Path(path)
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


def audit_artifact(stage: str, artifact: str | os.PathLike, expected_params: Mapping[str, Any] | None,
                   stale_artifacts: set[str] = frozenset()) -> ArtifactAudit:
    """One artifact against the current params and the files on disk; `stale_artifacts` are paths
    already found out of date (an input among them makes this one stale too)."""
    artifact = os.fspath(artifact)
    if not os.path.exists(artifact):
        return ArtifactAudit(stage, artifact, MISSING, ["not made yet"])
    prov = artifact_provenance(artifact) if os.path.isfile(artifact) else None
    if prov is None:
        return ArtifactAudit(stage, artifact, NOT_RECORDED, ["exists; records no provenance"])
    result = ArtifactAudit(stage, artifact, UP_TO_DATE, params=prov.get("params"),
                           merflow_version=prov.get("merflow_version"))
    if expected_params is not None:
        differences = params_differences(prov.get("params") or {}, expected_params)
        if differences:
            result.reasons.append("params differ from the current params: " + "; ".join(differences))
    for name, recorded in (prov.get("inputs") or {}).items():
        path, sha = recorded["path"], recorded["sha256"]
        if not os.path.exists(path):
            status = "missing"
        elif os.path.normpath(path) in stale_artifacts:
            status = "stale"
        else:
            status = "unchanged" if file_sha256(path) == sha else "changed"
        result.inputs.append(InputCheck(name, path, sha, status))
        if status != "unchanged":
            result.reasons.append(f"input {name} ({path}) is {status}"
                                  + (" since this artifact was made" if status == "changed" else ""))
    if result.reasons:
        result.status = STALE
    return result


def fold_numbers_now(ds: str, protocol: str) -> list[int]:
    """The folds of a dataset and protocol: from its saved folds file, or the protocol's k before there is one."""
    folds_csv = Path(paths.FOLDS.format(ds=ds, protocol=protocol))
    if folds_csv.is_file():
        from pipeline.protocols import fold_numbers
        return fold_numbers(folds_csv)
    from pipeline.protocols import kfold_k
    return list(range(kfold_k(protocol) or 0))


def audit_pipeline(params: Mapping) -> list[ArtifactAudit]:
    """Every artifact of the pipeline params describe, in the stage table's order (upstream first)."""
    results: list[ArtifactAudit] = []
    stale: set[str] = set()
    for stage in STAGES.values():
        for wildcards in wildcard_values(stage, params, fold_numbers_now):
            label = " ".join([stage.name, *(f"{w}{v}" if w in ("seed", "fold") else str(v)
                                            for w, v in wildcards.items())])
            artifact = output_files(stage, params, wildcards)[stage.audited]
            expected = None
            if stage.records_params():
                expected = stage_params(params, stage.name, ds=wildcards.get("ds"), method=wildcards.get("method"),
                                        seed=wildcards.get("seed"))
                if "fold" in wildcards:
                    expected = {**expected, "fold": wildcards["fold"]}
            entry = audit_artifact(label, artifact, expected, stale)
            if entry.status in (STALE, MISSING):
                stale.add(os.path.normpath(artifact))
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


def audit_json(results: list[ArtifactAudit]) -> str:
    return json.dumps([asdict(r) for r in results], indent=2)
