"""The `merflow` command: generate demo data, run one stage, write dvc.yaml, inspect artifacts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import MerflowError


def _load(params_files: Sequence[str]) -> dict:
    from pipeline.config import load_params
    return load_params(*params_files)


def cmd_synth(args: argparse.Namespace) -> None:
    from pipeline.config import stage_params
    from pipeline.datasets.synth import generate_casme2
    from pipeline.paths import SYNTH_DIR
    kwargs = stage_params(_load(args.params), "synth")
    for key in ("seed", "subjects", "clips_per_subject", "amplitude_px"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    out = Path(args.out or SYNTH_DIR.format(layout=args.layout))
    generate_casme2(out, **kwargs)
    print(f"wrote a synthetic {args.layout} dataset to {out}")


def cmd_stage(args: argparse.Namespace) -> None:
    from pipeline.stages import run_stage
    run_stage(_load(args.params), args.name, ds=args.dataset, protocol=args.protocol, method=args.method,
              fold=args.fold)


def cmd_dvc_yaml(args: argparse.Namespace) -> None:
    from pipeline.dvcgen import dvc_yaml
    text = dvc_yaml(_load(args.params))
    if args.check:
        if Path(args.out).read_text() != text:
            raise MerflowError(f"{args.out} is out of date with {', '.join(args.params)}: run `merflow dvc-yaml`")
        print(f"{args.out} is up to date")
        return
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


def cmd_inspect(args: argparse.Namespace) -> None:
    import h5py

    from pipeline.artifacts import read_provenance
    path = Path(args.artifact)
    if not path.is_file():
        raise MerflowError(f"{path}: no such file")
    try:
        provenance = read_provenance(path)
    except OSError as error:
        raise MerflowError(f"{path}: not an HDF5 artifact ({error})") from None
    print(f"{path}")
    for key, value in provenance.items():
        print(f"  {key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    with h5py.File(path, "r") as h5:
        if "clips" in h5:
            clips = list(h5["clips"])
            first = h5["clips"][clips[0]]["frames"] if clips else None
            print(f"  clips: {len(clips)}" + (f" (first: {clips[0]}, frames {first.shape} {first.dtype})"
                                              if first is not None else ""))
        for name, item in h5.items():
            if isinstance(item, h5py.Dataset):
                print(f"  /{name}: {item.shape} {item.dtype}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="merflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    params_help = "params files, later ones overriding earlier ones (default: params.yaml)"

    synth = sub.add_parser("synth", help="generate a synthetic dataset in a real dataset's layout")
    synth.add_argument("--layout", default="casme2", choices=["casme2"])
    synth.add_argument("--out", help="output folder (default: data/synthetic/LAYOUT)")
    synth.add_argument("--params", nargs="+", default=["params.yaml"], help=params_help)
    synth.add_argument("--seed", type=int)
    synth.add_argument("--subjects", type=int)
    synth.add_argument("--clips-per-subject", type=int)
    synth.add_argument("--amplitude-px", type=float)
    synth.set_defaults(func=cmd_synth)

    stage = sub.add_parser("stage", help="run one pipeline stage (what each DVC stage runs)")
    stage.add_argument("name", choices=["synth", "index", "align", "magnify", "tensors", "folds", "train",
                                        "aggregate", "report"])
    stage.add_argument("--dataset", help="dataset name (for synth: the layout)")
    stage.add_argument("--protocol")
    stage.add_argument("--method")
    stage.add_argument("--fold", type=int)
    stage.add_argument("--params", nargs="+", default=["params.yaml"], help=params_help)
    stage.set_defaults(func=cmd_stage)

    dvc = sub.add_parser("dvc-yaml", help="write dvc.yaml from params.yaml (or --check that it is current)")
    dvc.add_argument("--params", nargs="+", default=["params.yaml"], help=params_help)
    dvc.add_argument("--out", default="dvc.yaml")
    dvc.add_argument("--check", action="store_true")
    dvc.set_defaults(func=cmd_dvc_yaml)

    inspect = sub.add_parser("inspect", help="shape, params and provenance of an HDF5 artifact")
    inspect.add_argument("artifact")
    inspect.set_defaults(func=cmd_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MerflowError as error:
        print(f"merflow: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
