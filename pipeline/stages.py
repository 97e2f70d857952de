"""The stage graph in one table: what each stage reads, writes and depends on.

Snakemake's rules (workflow/rules/*.smk) and DVC's stages (dvc.yaml, written by `merflow dvc-yaml`)
are both derived from the paths in pipeline/paths.py, the params selected by
pipeline.config.stage_params and the code lists below; `run_stage` is what `merflow stage` (the
command every DVC stage runs) executes, calling the same functions as the Snakemake scripts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pipeline import paths
from pipeline.baselines import BASELINES, methods_not_run, methods_to_run
from pipeline.config import STAGES as STAGE_PARAMS
from pipeline.config import stage_params

# Every module a stage calls is a dependency of that stage, so editing the code reruns it.
COMMON_CODE = ["pipeline/artifacts.py", "pipeline/config.py", "pipeline/errors.py", "pipeline/imageio.py"]
STAGE_CODE = {
    "synth": ["pipeline/datasets/synth.py", "pipeline/datasets/synth_layouts.py", "pipeline/datasets/synth_more.py",
              "pipeline/datasets/face_photos.py", "pipeline/faces.py"],
    "index": ["pipeline/index.py", "pipeline/datasets/common.py", "pipeline/datasets/casme2.py",
              "pipeline/datasets/casme.py", "pipeline/datasets/smic.py", "pipeline/datasets/samm.py",
              "pipeline/datasets/casme3.py", "pipeline/datasets/mmew.py", "pipeline/datasets/fourdme.py",
              "pipeline/datasets/layouts.py", "pipeline/datasets/corrections.csv"],
    "align": ["pipeline/faces.py", "pipeline/apex.py"],
    "magnify": ["pipeline/evm.py"],
    "tensors": ["pipeline/jitter.py"],
    "folds": ["pipeline/protocols.py"],
    "train": ["pipeline/train.py", "pipeline/model.py", "pipeline/metrics.py", "pipeline/composite.py"],
    **{method: ["pipeline/metrics.py", "pipeline/baselines/__init__.py", "pipeline/baselines/clips.py",
                "pipeline/baselines/classify.py", "pipeline/baselines/stage.py", *modules]
       for method, modules in {"lbptop": ["pipeline/baselines/lbptop.py"],
                               "lbpsip": ["pipeline/baselines/lbptop.py", "pipeline/baselines/lbpsip.py"],
                               "tics": ["pipeline/baselines/lbptop.py", "pipeline/baselines/tics.py"],
                               "mdmo": ["pipeline/baselines/mdmo.py"],
                               "pretrained_cnn": ["pipeline/baselines/pretrained.py"]}.items()},
    "aggregate": ["pipeline/report.py"],
    "report": ["pipeline/report.py", "pipeline/jitter.py"],
}
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def code_deps(stage: str) -> list[str]:
    """The source files a stage runs (those that exist in this checkout), relative to the repo root."""
    return [path for path in COMMON_CODE + STAGE_CODE[stage] if (PACKAGE_ROOT / path).exists()]


def fold_dir(ds: str, protocol: str, method: str, fold: int) -> Path:
    return Path(paths.FOLD_DIR.format(ds=ds, protocol=protocol, method=method, fold=fold))


def run_stage(params: Mapping, stage: str, *, ds: str | None = None, protocol: str | None = None,
              method: str | None = None, fold: int | None = None) -> None:
    """Run one stage for one dataset (and protocol, method, fold where they apply), as Snakemake would."""
    kwargs = stage_params(params, stage, ds=ds, method=method) if stage in STAGE_PARAMS else {}
    if stage == "synth":
        from pipeline.datasets.synth_layouts import generate_synthetic
        generate_synthetic(ds, Path(paths.SYNTH_DIR.format(layout=ds)), **kwargs)
    elif stage == "index":
        from pipeline.index import index_stage
        index_stage(Path(paths.INDEX.format(ds=ds)), Path(paths.EXCLUDED.format(ds=ds)), **kwargs)
    elif stage == "align":
        from pipeline.faces import align_stage
        align_stage(Path(paths.INDEX.format(ds=ds)), Path(paths.ALIGNED.format(ds=ds)),
                    Path(paths.ALIGN_QC.format(ds=ds)), **kwargs)
    elif stage == "magnify":
        from pipeline.evm import magnify_stage
        magnify_stage(Path(paths.ALIGNED.format(ds=ds)), Path(paths.MAGNIFIED.format(ds=ds)),
                      Path(paths.MAGNIFY_QC.format(ds=ds)), **kwargs)
    elif stage == "tensors":
        from pipeline.jitter import tensors_stage
        tensors_stage(Path(paths.MAGNIFIED.format(ds=ds)), Path(paths.TENSORS.format(ds=ds)), **kwargs)
    elif stage == "folds":
        from pipeline.protocols import folds_stage
        folds_stage(Path(paths.INDEX.format(ds=ds)), Path(paths.FOLDS.format(ds=ds, protocol=protocol)),
                    protocol=protocol, **kwargs)
    elif stage == "train":
        from pipeline.train import train_fold_stage
        train_fold_stage(Path(paths.TENSORS.format(ds=ds)), Path(paths.FOLDS.format(ds=ds, protocol=protocol)),
                         int(fold), fold_dir(ds, protocol, method, fold), **kwargs)
    elif stage in BASELINES:
        from pipeline.baselines.stage import fold_stage_function
        fold_stage_function(stage)(Path(paths.ALIGNED.format(ds=ds)),
                                   Path(paths.FOLDS.format(ds=ds, protocol=protocol)), int(fold),
                                   fold_dir(ds, protocol, stage, fold), **kwargs)
    elif stage == "aggregate":
        from pipeline.report import aggregate_stage
        aggregate_stage(all_metrics(params), paths.TABLE2,
                        datasets={name: params["dataset"][name] for name in params["datasets"]},
                        protocols=list(params["protocols"]), not_run=methods_not_run(params),
                        metrics_json=paths.METRICS, folds_csv=paths.FOLD_METRICS)
    elif stage == "report":
        from pipeline.report import report_stage
        metrics = all_metrics(params)
        report_stage(paths.TABLE2, metrics, [m.replace("metrics.json", "predictions.csv") for m in metrics],
                     [paths.ALIGN_QC.format(ds=name) for name in params["datasets"]],
                     [paths.MAGNIFY_QC.format(ds=name) for name in params["datasets"]], paths.REPORT,
                     tensors_paths=[paths.TENSORS.format(ds=name) for name in params["datasets"]],
                     index_paths=[paths.INDEX.format(ds=name) for name in params["datasets"]],
                     figures_dir=paths.FIGURES)
    else:
        raise ValueError(f"unknown stage '{stage}'")


def all_metrics(params: Mapping) -> list[str]:
    """Every fold's metrics.json for the datasets, protocols and methods in params (folds from the saved files)."""
    from pipeline.protocols import fold_numbers
    files = []
    for ds in params["datasets"]:
        for protocol in params["protocols"]:
            folds_csv = paths.FOLDS.format(ds=ds, protocol=protocol)
            for method in methods_to_run(params):  # not the pre-trained CNN without weights
                for fold in fold_numbers(Path(folds_csv)):
                    files.append(os.fspath(fold_dir(ds, protocol, method, fold) / "metrics.json"))
    return files
