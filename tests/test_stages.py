"""The stage table (pipeline/stages.py): every entry calls its function with arguments it takes, the
Snakemake rules take their stage's description from it and write none of their own, code dependencies
follow the imports, and the CLI offers exactly the table's stages."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from pipeline.ablation_jobs import DVC_STAGES
from pipeline.baselines import BASELINES, FLOWNETS, FRAME_CNNS, ON_ALIGNED, ON_FLOW, TRAINED
from pipeline.cli import build_parser
from pipeline.codedeps import code_deps, imported_modules
from pipeline.config import load_params
from pipeline.plan import fold_files, stage_files, wildcard_values
from pipeline.runner import stage_arguments, stage_function
from pipeline.stages import STAGES, stage_params

REPO = Path(__file__).resolve().parent.parent
PARAMS = load_params(REPO / "params.yaml", REPO / "tests" / "tiny.yaml")
PARAMS["methods"] = [*TRAINED, *BASELINES]
PARAMS["selection"] = ["last", "inner", "test"]
PARAMS["pretrained_cnn"] = {**PARAMS["pretrained_cnn"], "weights": "weights/vgg_face.pt"}
# The composites' stages run only for a composite: MEGC 2019's (workflow/configs/megc2019.yaml).
COMPOSITE_PARAMS = load_params(REPO / "params.yaml", REPO / "tests" / "tiny.yaml",
                               REPO / "workflow" / "configs" / "megc2019.yaml")


def two_folds(ds: str, protocol: str) -> list[int]:
    return [0, 1]


@pytest.mark.parametrize("name", list(STAGES))
def test_each_stage_calls_its_function_with_arguments_it_takes(name):
    """The entry's inputs, outputs and wildcards (by name) plus stage_params bind to the function's
    signature, and every argument it requires is given."""
    stage = STAGES[name]
    params = PARAMS if wildcard_values(stage, PARAMS, two_folds) else COMPOSITE_PARAMS
    wildcards = wildcard_values(stage, params, two_folds)[0]
    files = stage_files(stage, params, wildcards, two_folds)
    kwargs = stage_params(params, name, ds=wildcards.get("ds"), method=wildcards.get("method"))
    signature = inspect.signature(stage_function(stage))
    bound = signature.bind(**stage_arguments(stage, files, wildcards), **kwargs)
    required = {n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty
                and p.kind is not inspect.Parameter.VAR_KEYWORD}
    assert required <= set(bound.arguments)


RULE = re.compile(r"^(?:rule|checkpoint) (\w+):|^    rule:\n        name:\n            (\w+)", re.M)


def rule_sections(text: str) -> dict[str, dict[str, str]]:
    """rule name -> section (input, output, params, wildcard_constraints) -> its text, of a .smk file."""
    rules = {}
    starts = list(RULE.finditer(text))
    for match, end in zip(starts, [*starts[1:], None], strict=True):
        body = text[match.end():end.start() if end else len(text)]
        sections = re.findall(r"^( +)(input|output|params|wildcard_constraints):\n((?:\1    .*\n)+)", body, re.M)
        rules[match.group(1) or match.group(2)] = {          # comments and whitespace dropped
            key: "".join(re.sub(r"#.*", "", value).split()) for _, key, value in sections}
    return rules


def test_every_stage_rule_takes_its_description_from_the_table():
    """A rule that runs a stage writes no path, params or dataset condition of its own: its inputs, outputs,
    params and wildcard constraints are the table's (common.smk's stage_* helpers), with its own stage's
    name; the ablation grid's rules, which run a stage on other paths, and the spotting rules (spotting.smk,
    Snakemake only) are the exceptions."""
    text = "".join(path.read_text() for path in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    rules = rule_sections(text)
    flownet_rules = [*FLOWNETS, *(f"{m}_inner" for m in FLOWNETS)]
    names = {"baseline": [*ON_ALIGNED, *(f"{m}_inner" for m in FRAME_CNNS)], "flownet_rule": flownet_rules,
             "flownet_folds": [f"{rule}_folds" for rule in flownet_rules], "htnet_rule": ["htnet", "htnet_inner"],
             "test_rule": [f"{m}_test" for m in (*FRAME_CNNS, *ON_FLOW)]}
    seen = set()
    for rule, sections in rules.items():
        if rule.startswith("ablation") or rule in ("synth_long", "spot", "spotting", "all"):
            continue
        stage = f'"{rule}"' if rule in STAGES else rule          # the loops' rules: the loop variable
        assert sections["input"] == f"**stage_inputs({stage}),", rule
        assert sections["output"].startswith(f"**stage_outputs({stage}"), rule
        assert sections["params"] == f"p=stage_kwargs({stage}),", rule
        if "wildcard_constraints" in sections:
            assert sections["wildcard_constraints"] == f"**stage_constraints({stage}),", rule
        seen.update(names.get(rule, [rule]))
    assert seen == set(STAGES)


def test_no_import_cycle_in_the_package():
    """pipeline/ imports form no cycle (imports inside functions included)."""
    modules = {".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
               for path in (REPO / "pipeline").rglob("*.py")}
    graph = {name: {m for m in imported_modules(path, name) if m in modules and m != name}
             for name, path in modules.items()}
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> None:
        assert name not in stack, " -> ".join([*stack[stack.index(name):], name])
        if name in done:
            return
        for imported in graph[name]:
            if not name.startswith(imported + "."):       # a module may import its own package's names
                visit(imported, [*stack, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_a_fold_stage_writes_under_its_fold_folder():
    files = stage_files(STAGES["train"], PARAMS, {"ds": "casme2", "protocol": "kfold2", "method": "rcnn", "seed": 0,
                                                 "fold": 1})
    assert files["metrics"] == "results/casme2/kfold2/rcnn/seed0/fold1/metrics.json"
    assert files["tensors_h5"] == "data/casme2/tensors.h5" and files["folds_csv"] == "data/casme2/folds/kfold2.csv"
    arguments = stage_arguments(STAGES["train"], files, {"fold": "1", "seed": "0", "method": "rcnn"})
    assert arguments["out_dir"] == Path("results/casme2/kfold2/rcnn/seed0/fold1") and arguments["fold"] == 1
    assert "seed" not in arguments and "metrics" not in arguments      # the seed is a param; the files are out_dir's
    lbptop = stage_files(STAGES["lbptop"], PARAMS, {"ds": "casme2", "protocol": "kfold2", "seed": 0, "fold": 0})
    assert lbptop["predictions"] == "results/casme2/kfold2/lbptop/seed0/fold0/predictions.csv"


def test_gathering_stages_read_every_fold_of_every_method_that_runs():
    # k-fold's folds are known from params (kfold5: 5), leave-one-subject-out's from the saved folds file.
    metrics = fold_files(PARAMS, "metrics.json", two_folds)
    rows = 11 + 2 * 7              # 11 methods, and the inner and test rows of the 7 networks
    assert PARAMS["protocols"] == ["kfold5"] and len(metrics) == len(PARAMS["datasets"]) * rows * 5
    loso = fold_files({**PARAMS, "protocols": ["loso"]}, "metrics.json", two_folds)
    assert len(loso) == len(PARAMS["datasets"]) * rows * 2
    assert "results/casme2/loso/htnet-test/seed0/fold1/metrics.json" in loso
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
