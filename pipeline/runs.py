"""The published results: the current configuration's run folder copied to the paths users read.

Table 2, its JSON and per-fold CSV, the report and its figures are made in results/runs/{run}/, a
folder named by a hash of the configuration's plan (pipeline.plan.run_key: datasets, protocols,
methods, seeds and everything that decides the folds). A new plan names a folder that does not exist
yet, so its aggregate and report always run, whatever the workflow engine knows of the folds;
switching back to an earlier plan finds its folder made and only publishes it again. The publish
stage copies the run's files to results/table2.csv, results/report.html and the rest, each written
whole or not at all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.artifacts import atomic_directory, atomic_output


def publish_stage(run_table: Path, run_metrics_json: Path, run_fold_metrics: Path, run_report: Path,
                  run_figures: Path, table: Path, metrics_json: Path, fold_metrics: Path, report: Path,
                  figures: Path) -> None:
    """Copy a run's Table 2, metrics JSON, per-fold CSV, report and figures folder to where users read them."""
    for source, target in ((run_table, table), (run_metrics_json, metrics_json), (run_fold_metrics, fold_metrics),
                           (run_report, report)):
        with atomic_output(target) as tmp:
            shutil.copyfile(source, tmp)
    with atomic_directory(figures) as tmp:
        shutil.copytree(run_figures, tmp, dirs_exist_ok=True)
    print(f"published {Path(run_table).parent} to {os.fspath(Path(table).parent)}/")
