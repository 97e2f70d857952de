"""params.yaml: loading, schema validation, the datasets and composites params list, and the params the
stages that compute theirs read (each stage's entry in pipeline/stages.py declares the params it reads;
pipeline.stages.stage_params gives them to the Snakemake rules and to `merflow stage` alike).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.baselines import methods_not_run
from pipeline.errors import ParamsError
from pipeline.paths import SYNTH_DIR

SEEDED_SECTIONS = ("train", "cnn", "pretrained_cnn", "ststnet", "off_apexnet", "htnet")   # their seed is `seeds`'s
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "params.schema.yaml"
PACKAGED_PARAMS = str(Path(__file__).resolve().parent.parent / "params.yaml")   # the defaults merflow ships


def load_params(*paths: str | os.PathLike) -> dict:
    """Read params files, later ones overriding earlier ones key by key, and validate the result."""
    params: dict = {}
    for path in paths:
        with open(path) as handle:
            deep_update(params, yaml.safe_load(handle) or {})
    validate_params(params)
    return params


def deep_update(base: dict, override: Mapping) -> dict:
    """Merge `override` into `base` recursively (how Snakemake merges --configfile overlays)."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _with_defaults(validator_class: Any) -> Any:
    """A validator that sets every missing property that has a `default` in the schema."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator: Any, props: Mapping, instance: Any, schema: Mapping) -> Any:
        if isinstance(instance, dict):
            for name, subschema in props.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, props, instance, schema)
    return jsonschema.validators.extend(validator_class, {"properties": properties})


_DEFAULTS_VALIDATOR = _with_defaults(jsonschema.Draft202012Validator)


def validate_params(params: Mapping) -> None:
    if isinstance(params.get("folds"), Mapping) and "k" in params["folds"]:
        k = params["folds"]["k"]
        raise ParamsError(f"folds.k: the number of folds is part of the protocol's name, so that it shows in "
                          f"every path: remove folds.k and write `protocols: [kfold{k}]` (kfold5 is the paper's)")
    old_seeds = [f"{section}.seed" for section in SEEDED_SECTIONS
                 if isinstance(params.get(section), Mapping) and "seed" in params[section]]
    if old_seeds:
        raise ParamsError(f"{', '.join(old_seeds)}: a network's seed is the top-level `seeds` list (each seed its own "
                          f"run and folder): remove {' and '.join(old_seeds)} and write e.g. `seeds: [0]`")
    with open(SCHEMA_PATH) as handle:
        schema = yaml.safe_load(handle)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(params), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'.'.join(map(str, e.path)) or '(top level)'}: {e.message}" for e in errors]
        raise ParamsError("params do not match workflow/schemas/params.schema.yaml:\n  " + "\n  ".join(lines))
    if isinstance(params, dict):
        # The schema's defaults filled in, as Snakemake's validate() fills them in the workflow's config: the
        # CLI, DVC and Snakemake then read (and record, and hash) the same params.
        _DEFAULTS_VALIDATOR(schema).validate(params)
    for method in ("ststnet", "off_apexnet", "htnet"):
        if method in params["methods"] and params[method]["input_size"] not in params["flow"]["sizes"]:
            raise ParamsError(f"{method}.input_size: the flow stage makes no {params[method]['input_size']} x "
                              f"{params[method]['input_size']} flow: add it to flow.sizes {params['flow']['sizes']}")
    for name in params["datasets"]:
        if name not in params["dataset"]:
            raise ParamsError(f"datasets: '{name}' has no entry under `dataset:`")
        if is_composite(params, name):
            validate_composite(params, name)
    for name, entry in params.get("spotting", {}).get("datasets", {}).items():
        synth_root = SYNTH_DIR.format(layout=entry["layout"])
        if entry.get("synthetic") and os.path.normpath(entry["root"]) != synth_root:
            raise ParamsError(f"spotting.datasets.{name}: a synthetic dataset is generated at {synth_root}, but root "
                              f"is {entry['root']}: set `synthetic: false` to read your copy there")
    for name in [*built_datasets(params), *composites(params)]:
        entry = params["dataset"][name]
        if not is_composite(params, name):
            synth_root = SYNTH_DIR.format(layout=entry["layout"])
            if entry.get("synthetic") and os.path.normpath(entry["root"]) != synth_root:
                raise ParamsError(f"dataset.{name}: a synthetic dataset is generated at {synth_root}, but root is "
                                  f"{entry['root']}: set `synthetic: false` to read your copy there")
        mapping = params["dataset"][name]["mapping"]
        if mapping not in params["mappings"]:
            raise ParamsError(f"dataset.{name}.mapping: '{mapping}' is not a key of `mappings:`")
        classes = params["mappings"][mapping]["classes"]
        # An emotion mapped to null is left out on purpose (listed in excluded.csv), not a class.
        by_layout = params["mappings"][mapping].get("by_layout", {})
        tables = {"emotions": params["mappings"][mapping]["emotions"],
                  **{f"by_layout.{layout}": table for layout, table in by_layout.items()}}
        for where, table in tables.items():
            unknown = set(table.values()) - set(classes) - {None}
            if unknown:
                raise ParamsError(f"mappings.{mapping}.{where} maps to {sorted(unknown)}, not in its classes {classes}")


def validate_composite(params: Mapping, name: str) -> None:
    """A composite's sources are at least two datasets of `dataset:` that are read from a tree."""
    sources = params["dataset"][name]["sources"]
    for source in sources:
        if source not in params["dataset"]:
            raise ParamsError(f"dataset.{name}.sources: '{source}' has no entry under `dataset:`")
        if is_composite(params, source):
            raise ParamsError(f"dataset.{name}.sources: '{source}' is a composite itself; list its sources instead")


# --- composites (pipeline/composite.py): a `dataset` entry of kind composite, pooling its `sources` ----------

def is_composite(params: Mapping, name: str) -> bool:
    return params["dataset"][name].get("kind") == "composite"


def composites(params: Mapping) -> list[str]:
    """The composites params run."""
    return [name for name in params["datasets"] if is_composite(params, name)]


def composite_sources(params: Mapping, name: str) -> list[str]:
    return list(params["dataset"][name]["sources"])


def built_datasets(params: Mapping) -> list[str]:
    """The datasets read from a tree (index, align): those listed that are not composites, then the
    composites' sources, each once. A source need not be listed itself (then only its index and aligned
    store are made, for the composite)."""
    names = [name for name in params["datasets"] if not is_composite(params, name)]
    for composite in composites(params):
        names.extend(composite_sources(params, composite))
    return list(dict.fromkeys(names))


def dataset_summary(params: Mapping, name: str) -> dict[str, Any]:
    """A dataset's entry as Table 2 reads it: for a composite, `layout` "composite", `data` (synthetic,
    real or mixed, from its sources) and `source_entries` (each source's layout and data)."""
    entry = dict(params["dataset"][name])
    if not is_composite(params, name):
        return entry
    sources = {source: {"layout": params["dataset"][source]["layout"],
                        "data": "synthetic" if params["dataset"][source].get("synthetic") else "real"}
               for source in composite_sources(params, name)}
    kinds = {source["data"] for source in sources.values()}
    return {**entry, "layout": "composite", "data": kinds.pop() if len(kinds) == 1 else "mixed",
            "synthetic": all(s["data"] == "synthetic" for s in sources.values()), "source_entries": sources}


def classes_of(params: Mapping, ds: str) -> list[str]:
    return list(params["mappings"][params["dataset"][ds]["mapping"]]["classes"])


# --- the params a stage computes from several keys (its entry in pipeline/stages.py names the keys) -------

def index_params(params: Mapping, ds: str | None) -> dict[str, Any]:
    """A dataset's index: its entry and mapping, the index section, and the corrections made to its clips
    (params' `index.corrections` rows of this dataset, without the dataset column)."""
    assert ds is not None
    entry, mapping = params["dataset"][ds], params["mappings"][params["dataset"][ds]["mapping"]]
    return {"dataset": ds, "layout": entry["layout"], "root": entry["root"], "fps": entry["fps"],
            "emotions": dict(mapping["emotions"]), "classes": list(mapping["classes"]),
            "on_bad_clip": params["index"]["on_bad_clip"], "variant": entry.get("variant"),
            "registered": bool(entry.get("registered", False)),
            "corrections": [{k: v for k, v in row.items() if k != "dataset"}
                            for row in params["index"].get("corrections", []) if row["dataset"] == ds]}


def composite_index_params(params: Mapping, ds: str | None) -> dict[str, Any]:
    """A composite's index: its sources with their layouts and kinds, its mapping (per source layout too)
    and the clips it excludes."""
    assert ds is not None
    entry, mapping = params["dataset"][ds], params["mappings"][params["dataset"][ds]["mapping"]]
    sources = composite_sources(params, ds)
    return {"dataset": ds, "sources": sources,
            "layouts": {source: params["dataset"][source]["layout"] for source in sources},
            "synthetic": {source: bool(params["dataset"][source].get("synthetic", False)) for source in sources},
            "classes": list(mapping["classes"]), "emotions": dict(mapping["emotions"]),
            "emotions_by_layout": {layout: dict(table) for layout, table in mapping.get("by_layout", {}).items()},
            "exclude": entry.get("exclude")}


def aggregate_params(params: Mapping, ds: str | None = None) -> dict[str, Any]:
    """Table 2: every dataset as it reads it, the protocols, the methods that cannot run (and why) and the
    bootstrap."""
    return {"datasets": {name: dataset_summary(params, name) for name in params["datasets"]},
            "protocols": list(params["protocols"]),
            "not_run": methods_not_run(params),
            "bootstrap": params["aggregate"]["bootstrap"], "bootstrap_seed": params["aggregate"]["bootstrap_seed"]}
