"""A flow network's per-fold stage: one fold's predictions.csv, metrics.json and epochs.h5, from the store of every
fold trained together (`folds_together`, pipeline/baselines/stacked.py) or by training the fold alone
(pipeline/baselines/flownets.py). Reading the store needs no torch: with folds trained together, a
fold's job costs the time to write three small files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py

from pipeline.artifacts import attr_value, provenance
from pipeline.errors import BadInputError
from pipeline.flow import read_flow
from pipeline.selection import write_fold_with_epochs


def flownet_fold_stage(method: str, flow_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *,
                       trained_h5: Path | None = None, classes: Sequence[str], input_size: int, epochs: int,
                       lr: float, batch_size: int, dropout: float, seed: int, threads: int,
                       folds_together: bool = True, selection: str = "last",
                       inner: Mapping[str, Any] | None = None) -> None:
    """One fold's outputs: read from `trained_h5` when the folds were trained together, else trained here."""
    params = dict(input_size=input_size, epochs=epochs, lr=lr, batch_size=batch_size, dropout=dropout, seed=seed)
    if trained_h5 is None:
        from pipeline.baselines.flownets import flownet_fold  # torch only when a fold trains alone
        flownet_fold(method, flow_h5, folds_csv, fold, out_dir, classes=classes, threads=threads, selection=selection,
                     inner=inner, **params)
        return
    fold = int(fold)
    with h5py.File(trained_h5, "r") as h5:
        if f"fold{fold}" not in h5:
            raise BadInputError(f"fold {fold}", trained_h5, f"has no fold {fold} (folds: {', '.join(h5)})")
        group = h5[f"fold{fold}"]
        arrays = {name: group[name][()] for name in ("test_rows", "validation_rows", "watched_probabilities",
                                                      "losses")}
        n_train = int(group.attrs["n_train_clips"])
        weights, seconds = int(h5.attrs["parameters"]), float(h5.attrs["seconds"])
        trained_classes = [str(attr_value(c)) for c in h5.attrs["classes"]]
    if trained_classes != list(classes):
        raise BadInputError(f"fold {fold}", trained_h5,
                            f"was trained on the classes {trained_classes}, not {list(classes)}")
    _, clips = read_flow(flow_h5, input_size)
    losses = arrays["losses"]
    extra = {"n_train_clips": n_train, "method": method, "fold": fold, "parameters": weights,
             "final_train_loss": round(float(losses[-1]), 6) if len(losses) else None,
             "trained": "with every fold of its seed, in one job", "seconds": round(seconds, 3)}
    record = provenance(method, {**params, "fold": fold, "selection": selection},
                        {"flow": flow_h5, "folds": folds_csv, "trained": trained_h5})
    write_fold_with_epochs(out_dir, clips, arrays["test_rows"], arrays["validation_rows"],
                           arrays["watched_probabilities"], losses, classes=classes, selection=selection,
                           inner=inner, extra={**extra, "provenance": record}, record=record)


def ststnet_fold_stage(flow_h5: Path, folds_csv: Path, fold: int, out_dir: Path, **params: object) -> None:
    """STSTNet on one fold."""
    flownet_fold_stage("ststnet", flow_h5, folds_csv, fold, out_dir, **params)  # type: ignore[arg-type]


def off_apexnet_fold_stage(flow_h5: Path, folds_csv: Path, fold: int, out_dir: Path, **params: object) -> None:
    """OFF-ApexNet on one fold."""
    flownet_fold_stage("off_apexnet", flow_h5, folds_csv, fold, out_dir, **params)  # type: ignore[arg-type]


def ststnet_inner_fold_stage(flow_h5: Path, folds_csv: Path, fold: int, out_dir: Path, **params: object) -> None:
    """STSTNet on one fold, the epoch chosen on validation subjects of its training clips."""
    flownet_fold_stage("ststnet", flow_h5, folds_csv, fold, out_dir, selection="inner", **params)  # type: ignore[arg-type]


def off_apexnet_inner_fold_stage(flow_h5: Path, folds_csv: Path, fold: int, out_dir: Path, **params: object) -> None:
    """OFF-ApexNet on one fold, the epoch chosen on validation subjects of its training clips."""
    flownet_fold_stage("off_apexnet", flow_h5, folds_csv, fold, out_dir, selection="inner",
                       **params)  # type: ignore[arg-type]
