"""The stage table (pipeline/stages.py): every entry calls its function with arguments it takes, code
dependencies follow the imports, and the CLI offers exactly the table's stages."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pipeline.ablation_jobs import DVC_STAGES
from pipeline.baselines import BASELINES, TRAINED
from pipeline.cli import build_parser
from pipeline.config import load_params, stage_params
from pipeline.stages import STAGES, code_deps, fold_files, stage_files, stage_function, wildcard_values

REPO = Path(__file__).resolve().parent.parent
PARAMS = load_params(REPO / "params.yaml", REPO / "tests" / "tiny.yaml")
PARAMS["methods"] = [*TRAINED, *BASELINES]
PARAMS["pretrained_cnn"] = {**PARAMS["pretrained_cnn"], "weights": "weights/vgg_face.pt"}
# The composites' stages run only for a composite: MEGC 2019's (workflow/configs/megc2019.yaml).
COMPOSITE_PARAMS = load_params(REPO / "params.yaml", REPO / "tests" / "tiny.yaml",
                               REPO / "workflow" / "configs" / "megc2019.yaml")


def two_folds(ds: str, protocol: str) -> list[int]:
    return [0, 1]


@pytest.mark.parametrize("name", list(STAGES))
def test_each_stage_calls_its_function_with_arguments_it_takes(name):
    """The table's positional and keyword arguments plus stage_params bind to the function's signature."""
    stage = STAGES[name]
    params = PARAMS if wildcard_values(stage, PARAMS, two_folds) else COMPOSITE_PARAMS
    wildcards = wildcard_values(stage, params, two_folds)[0]
    files = stage_files(stage, params, wildcards, two_folds)
    values = {**files, **wildcards, "fold_dir": "results/fold"}
    kwargs = stage_params(params, name, ds=wildcards.get("ds"), method=wildcards.get("method"))
    signature = inspect.signature(stage_function(stage))
    bound = signature.bind(*(values[a] for a in stage.args), **{k: values[v] for k, v in stage.keywords.items()},
                           **kwargs)
    required = {n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty}
    assert required <= set(bound.arguments)


def test_a_fold_stage_writes_under_its_fold_folder():
    files = stage_files(STAGES["train"], PARAMS, {"ds": "casme2", "protocol": "kfold2", "method": "rcnn", "seed": 0,
                                                 "fold": 1})
    assert files["metrics"] == "results/casme2/kfold2/rcnn/seed0/fold1/metrics.json"
    assert files["tensors"] == "data/casme2/tensors.h5" and files["folds"] == "data/casme2/folds/kfold2.csv"
    lbptop = stage_files(STAGES["lbptop"], PARAMS, {"ds": "casme2", "protocol": "kfold2", "seed": 0, "fold": 0})
    assert lbptop["predictions"] == "results/casme2/kfold2/lbptop/seed0/fold0/predictions.csv"


def test_gathering_stages_read_every_fold_of_every_method_that_runs():
    # k-fold's folds are known from params (kfold5: 5), leave-one-subject-out's from the saved folds file.
    metrics = fold_files(PARAMS, "metrics.json", two_folds)
    assert PARAMS["protocols"] == ["kfold5"] and len(metrics) == len(PARAMS["datasets"]) * 10 * 5   # 10 methods
    loso = fold_files({**PARAMS, "protocols": ["loso"]}, "metrics.json", two_folds)
    assert len(loso) == len(PARAMS["datasets"]) * 10 * 2
    assert "results/casme2/loso/rcnn/seed0/fold1/metrics.json" in loso
    without_weights = {**PARAMS, "pretrained_cnn": {**PARAMS["pretrained_cnn"], "weights": None}}
    assert not any("pretrained_cnn" in m for m in fold_files(without_weights, "metrics.json", two_folds))
    assert wildcard_values(STAGES["pretrained_cnn"], without_weights, two_folds) == []


def test_code_dependencies_follow_the_imports():
    # evm.py imports the torch path inside a function: still a dependency of magnify.
    assert {"pipeline/evm.py", "pipeline/evm_torch.py", "pipeline/artifacts.py"} <= set(code_deps("magnify"))
    index = set(code_deps("index"))
    assert {"pipeline/index.py", "pipeline/datasets/casme2.py", "pipeline/datasets/smic.py",
            "pipeline/datasets/corrections.csv"} <= index
    assert not any("synth" in path for path in index)       # reading a tree does not depend on writing one
    assert "pipeline/datasets/synth.py" in code_deps("synth")
    assert "pipeline/baselines/frame_cnns.py" not in code_deps("lbptop")
    assert "pipeline/baselines/frame_cnns.py" in code_deps("cnn")
    assert "pipeline/train.py" not in code_deps("magnify") and "pipeline/evm.py" not in code_deps("train")
    assert all((REPO / path).is_file() for name in STAGES for path in code_deps(name))


def test_merflow_stage_offers_the_tables_stages():
    parser = build_parser()
    stage = next(a for a in parser._subparsers._group_actions[0].choices["stage"]._actions if a.dest == "name")
    assert list(stage.choices) == [*STAGES, *DVC_STAGES]
