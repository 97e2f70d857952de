"""params.yaml and its schema: the defaults validate, bad params are refused with a message naming the key."""

import copy
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_params, validate_params
from pipeline.errors import ParamsError
from pipeline.stages import stage_params

DEFAULTS = load_params("params.yaml")
CONFIGS = Path("workflow/configs")


def broken(change):
    params = copy.deepcopy(DEFAULTS)
    change(params)
    return params


@pytest.mark.parametrize("change, where", [
    (lambda p: p["train"].__setitem__("learning_rate", 0.1), "train"),                 # unknown key
    (lambda p: p["train"].__setitem__("maps", "32"), "train.maps"),                     # wrong type
    (lambda p: p["magnify"].__setitem__("alpha", -1), "magnify.alpha"),                 # alpha < 0
    (lambda p: p["tensors"]["kernels"].append("gaussian"), "tensors.kernels"),          # no such kernel
    (lambda p: p.__setitem__("datasets", ["smic"]), "smic"),                            # no dataset entry
    (lambda p: p["mappings"]["paper4"]["emotions"].__setitem__("joy", "happy"), "happy"),  # class not in classes
    (lambda p: p["dataset"]["casme2"].__setitem__("root", "elsewhere"), "synthetic"),   # synthetic root moved
    (lambda p: p.__setitem__("protocols", ["kfold1"]), "protocols.0"),                  # one fold is no split
    (lambda p: p["folds"].__setitem__("k", 10), r"folds.k: .* `protocols: \[kfold10\]`"),  # k lives in the name
])
def test_bad_params_are_refused_naming_the_key(change, where):
    with pytest.raises(ParamsError, match=where):
        validate_params(broken(change))


def test_overlays_merge_key_by_key(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"train": {"maps": 4}}))
    params = load_params("params.yaml", overlay)
    assert params["train"]["maps"] == 4
    assert params["train"]["lr"] == DEFAULTS["train"]["lr"]


def test_stage_params_name_exactly_what_a_stage_reads():
    assert stage_params(DEFAULTS, "magnify") == {**DEFAULTS["magnify"], "eye_y": DEFAULTS["align"]["eye_y"]}
    assert stage_params(DEFAULTS, "tensors", ds="casme2")["classes"] == ["positive", "negative", "surprise", "others"]
    index = stage_params(DEFAULTS, "index", ds="casme2")
    assert index["emotions"]["repression"] == "others" and index["fps"] == 200
    assert stage_params(DEFAULTS, "train", method="rcnn_feedforward")["method"] == "rcnn_feedforward"
    assert stage_params(DEFAULTS, "cnn", ds="casme2")["classes"] == ["positive", "negative", "surprise", "others"]


def test_the_number_of_folds_is_in_the_protocol_and_its_paths():
    params = broken(lambda p: p.__setitem__("protocols", ["kfold10", "loso"]))
    validate_params(params)
    from pipeline.dvcgen import dvc_stages
    stages = dvc_stages(broken(lambda p: p.__setitem__("protocols", ["kfold10", "kfold5"])))["stages"]
    assert stages["train_k5"]["matrix"]["protocol"] == ["kfold5"]
    assert stages["train_k5"]["matrix"]["fold"] == [0, 1, 2, 3, 4]
    assert stages["train_k10"]["matrix"]["fold"] == list(range(10))
    assert "results/casme2/kfold10/rcnn/seed0/fold9/metrics.json" in stages["aggregate"]["deps"]


@pytest.mark.parametrize("overlay", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_every_shipped_overlay_validates(overlay):
    params = load_params("params.yaml", CONFIGS / overlay)   # raises ParamsError naming the key if not
    for name in params["datasets"]:
        assert stage_params(params, "tensors", ds=name)["classes"]
