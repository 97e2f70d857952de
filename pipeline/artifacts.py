"""Artifacts on disk: atomic writes, provenance, and the HDF5 clip store shared by the stages.

Every stage writes its output to a temporary file beside the target and renames it into place only
when the whole file is written (every artifact is written atomically), so an interrupted or
failed stage never leaves a half-written artifact that a later stage could read.

Every HDF5 artifact records, as root attributes, the stage that made it, the params it was made
from (and their hash), the merflow version and the checksums of its inputs. Nothing time-dependent
is recorded, so the same params and inputs give byte-identical files. An artifact whose format has no
room for it (CSV, JSON, HTML, a folder) has the same record in a file beside it,
`<artifact>.provenance.json` (`write_sidecar`), which also holds the artifact's own checksum, so a
record left from another version of the file is recognised. A folder is checksummed by its listing
(names and sizes, `tree_sha256`): a dataset tree of thousands of frames is not read whole.

Clip store layout (aligned.h5, magnified.h5)::

    /                       attrs: provenance (see `write_provenance`)
    /clips/<clip_id>/frames uint8 (T, H, W, 3) RGB
    /clips/<clip_id>        attrs: subject, emotion, label, onset, apex, offset, fps (+ stage extras)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline import __version__


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file owner-only; artifacts are shared like any output
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Like `atomic_output`, for a directory: fill a temporary one, swap it in only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o755)                 # mkdtemp makes it 0700
    if target.exists():                  # rename() cannot replace a non-empty directory: move it aside
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / "previous")
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def tree_sha256(path: str | os.PathLike) -> str:
    """A folder's checksum from its listing: every file's path below it and its size, sorted. Hidden files
    (Snakemake's timestamp in a folder output, a desktop's .DS_Store) are not part of it."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{file.relative_to(root).as_posix()}\0{file.stat().st_size}\n".encode())
    return digest.hexdigest()


def path_sha256(path: str | os.PathLike) -> str:
    """A file's sha256, or a folder's listing checksum."""
    return tree_sha256(path) if os.path.isdir(path) else file_sha256(path)


def sidecar_path(artifact: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(artifact).rstrip('/')}.provenance.json")


def write_sidecar(artifact: str | os.PathLike, stage: str, params: Mapping[str, Any],
                  inputs: Mapping[str, str | os.PathLike | list | None]) -> None:
    """The provenance of an artifact that cannot hold it, in `<artifact>.provenance.json`: stage, params
    and their hash, merflow version, each input's path and checksum (a list for an input that gathers
    files), and the artifact's own checksum."""
    def record(path: str | os.PathLike) -> dict[str, str]:
        return {"path": os.fspath(path), "sha256": path_sha256(path)}
    recorded = {name: [record(p) for p in value] if isinstance(value, list | tuple) else record(value)
                for name, value in inputs.items() if value is not None}
    prov = {"stage": stage, "merflow_version": __version__, "params": json.loads(canonical_json(params)),
            "params_sha256": params_sha256(params), "inputs": recorded, "artifact": record(artifact)}
    with atomic_output(sidecar_path(artifact)) as tmp:
        tmp.write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n")


def read_sidecar(artifact: str | os.PathLike) -> dict | None:
    path = sidecar_path(artifact)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def params_sha256(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()


def provenance(stage: str, params: Mapping[str, Any], inputs: Mapping[str, str | os.PathLike]) -> dict:
    """What made an artifact: stage name, params, their hash, code version, input checksums, and the
    params of every stage upstream of it (`upstream_params`)."""
    return {
        "stage": stage,
        "merflow_version": __version__,
        "params": canonical_json(params),
        "params_sha256": params_sha256(params),
        "inputs": canonical_json({name: {"path": os.fspath(p), "sha256": file_sha256(p)}
                                  for name, p in inputs.items()}),
        "upstream": canonical_json(upstream_params(inputs)),
    }


def upstream_params(inputs: Mapping[str, str | os.PathLike]) -> dict[str, Any]:
    """{stage: params} of the stages that made the HDF5 inputs, and of those upstream of them.

    Carried from artifact to artifact, so that a trained model.pt knows the align, magnify and tensors
    params its input was made with (`merflow predict` preprocesses a new video the same way)."""
    upstream: dict[str, Any] = {}
    for path in inputs.values():
        if not (os.path.isfile(path) and h5py.is_hdf5(path)):
            continue
        prov = read_provenance(path)
        if "stage" in prov and "params" in prov:
            upstream.update(prov.get("upstream", {}))
            upstream[prov["stage"]] = prov["params"]
    return upstream


def write_provenance(h5: h5py.File, prov: Mapping[str, str]) -> None:
    for key, value in prov.items():
        h5.attrs[key] = value


def read_provenance(path: str | os.PathLike) -> dict:
    with h5py.File(path, "r") as h5:
        prov = {key: attr_value(value) for key, value in h5.attrs.items()}
    for key in ("params", "inputs", "upstream"):
        if key in prov:
            prov[key] = json.loads(prov[key])
    return prov


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as Python: bytes decoded, NumPy scalars as Python scalars."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def open_h5_for_write(path: str | os.PathLike) -> h5py.File:
    """An HDF5 file whose bytes depend only on what is written (no timestamps, fixed layout)."""
    return h5py.File(path, "w", libver=("earliest", "v110"), track_order=True)


def write_array(group: h5py.Group, name: str, data: np.ndarray, **kwargs: Any) -> h5py.Dataset:
    """Create a dataset without modification times, so reruns are byte-identical."""
    return group.create_dataset(name, data=data, track_times=False, **kwargs)


def write_clip(h5: h5py.File, clip_id: str, frames: np.ndarray, attrs: Mapping[str, Any],
               **arrays: np.ndarray) -> None:
    """Store one clip's uint8 (T, H, W, 3) frames, its metadata and any extra per-clip arrays."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"clip {clip_id}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    group = h5.require_group("clips").create_group(clip_id, track_order=True)
    write_array(group, "frames", frames, chunks=(1, *frames.shape[1:]))
    for name, array in arrays.items():
        write_array(group, name, np.asarray(array))
    for key, value in attrs.items():
        group.attrs[key] = value


def clip_ids(path: str | os.PathLike) -> list[str]:
    with h5py.File(path, "r") as h5:
        return list(h5["clips"].keys())


def read_clip(path_or_file: str | os.PathLike | h5py.File, clip_id: str) -> tuple[np.ndarray, dict]:
    """One clip's frames and attributes."""
    if isinstance(path_or_file, h5py.File):
        group = path_or_file["clips"][clip_id]
        return group["frames"][()], {k: attr_value(v) for k, v in group.attrs.items()}
    with h5py.File(path_or_file, "r") as h5:
        return read_clip(h5, clip_id)


def iter_clips(path: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, dict]]:
    """Stream (clip_id, frames, attrs) one clip at a time, so memory holds one clip."""
    with h5py.File(path, "r") as h5:
        for clip_id in h5["clips"]:
            frames, attrs = read_clip(h5, clip_id)
            yield clip_id, frames, attrs
