"""The other rows of Table 2: the paper's hand-crafted baselines (LBP-TOP, LBP-SIP, TICS, MDMO, each with
a linear SVM) and its two single-frame CNNs (VGG-Face's architecture from scratch, "CNNs", and fine-tuned
from the user's weights, "Pre-trained CNNs"), on the aligned faces; and the onset-apex flow networks
(STSTNet, OFF-ApexNet, pipeline/baselines/flownets.py; HTNet, pipeline/baselines/htnet.py), on the flow
stage's output. pipeline.train trains
the RCNN and its ablation without recurrence.

This module only names the methods and says which of them can run (it imports nothing heavy, because
the Snakefile reads it when it builds the DAG); the methods live in the modules beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

HANDCRAFTED = ("lbptop", "lbpsip", "tics", "mdmo")
FRAME_CNNS = ("cnn", "pretrained_cnn")                 # VGG-16s on single frames (baselines/frame_cnns.py)
ON_ALIGNED = (*HANDCRAFTED, *FRAME_CNNS)               # read data/{ds}/aligned.h5 (workflow/rules/baselines.smk)
FLOWNETS = ("ststnet", "off_apexnet")              # read data/{ds}/flow.h5 (workflow/rules/flow.smk)
ON_FLOW = (*FLOWNETS, "htnet")                     # read the flow stage's output (HTNet: baselines/htnet.py)
BASELINES = (*ON_ALIGNED, *ON_FLOW)
TRAINED = ("rcnn", "rcnn_feedforward")       # pipeline.train's methods, run by the train rule
SEEDED = (*TRAINED, "cnn", "pretrained_cnn", *ON_FLOW)   # networks: one run per seed of params' `seeds`
# Networks whose epoch can be chosen other than as the last (params' `selection`, pipeline/selection.py):
# each has a row per selection, named method-selection ("ststnet-inner"); `last` keeps the method's name.
SELECTABLE = (*TRAINED, *FRAME_CNNS, *ON_FLOW)
SELECTIONS = ("last", "inner", "test")
NEEDS_WEIGHTS = "not run: needs pre-trained weights"


def not_run_reason(params: Mapping, method: str) -> str | None:
    """Why `method` cannot run with these params (shown in Table 2 instead of a number), or None."""
    if method == "pretrained_cnn" and not params.get("pretrained_cnn", {}).get("weights"):
        return NEEDS_WEIGHTS
    return None


def methods_to_run(params: Mapping) -> list[str]:
    """The methods of params['methods'] that have per-fold jobs, in their order."""
    return [m for m in params["methods"] if not_run_reason(params, m) is None]


def any_method_runs(params: Mapping, methods: tuple[str, ...]) -> bool:
    """Whether one of `methods` is among the methods that run (the flow stage runs only for the flow networks)."""
    return bool(set(methods) & set(methods_to_run(params)))


def seeds_of(params: Mapping, method: str) -> list[int]:
    """The seeds a method (or a row of it) runs with: every seed of `seeds` for a network; the hand-crafted
    baselines, which are deterministic given their features, once, at svm.seed (TICS's pixel sample)."""
    return list(params["seeds"]) if split_row(method)[0] in SEEDED else [int(params["svm"]["seed"])]


def row_name(method: str, selection: str) -> str:
    """The name of a Table 2 row and its results folder: the method for `last`, method-selection otherwise."""
    return method if selection == "last" else f"{method}-{selection}"


def split_row(row: str) -> tuple[str, str]:
    """(method, selection) of a row name ("ststnet-test" -> ("ststnet", "test"))."""
    method, _, selection = row.partition("-")
    return method, selection or "last"


def rows_to_run(params: Mapping) -> list[str]:
    """The Table 2 rows that have per-fold files: each method that runs, and for a network of SELECTABLE one
    row per further selection of params' `selection` (method-inner, method-test)."""
    selections = [s for s in params.get("selection", ["last"]) if s != "last"]
    return [row for method in methods_to_run(params)
            for row in [method, *(row_name(method, s) for s in selections if method in SELECTABLE)]]


def methods_not_run(params: Mapping) -> dict[str, str]:
    """method -> reason, for the methods of params['methods'] that cannot run."""
    return {m: reason for m in params["methods"] if (reason := not_run_reason(params, m)) is not None}

