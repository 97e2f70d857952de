"""The `merflow` command: generate demo data, run one stage, write dvc.yaml, inspect artifacts,
predict on a new video."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import MerflowError

NOTES_LISTED = 10     # clip ids shown per kind of note by check-dataset


def _load(params_files: Sequence[str] | None) -> dict:
    """The params files given, else ./params.yaml, else the defaults merflow ships (so that every
    command works from any folder)."""
    from pipeline.config import PACKAGED_PARAMS, load_params
    if not params_files:
        params_files = ["params.yaml"] if Path("params.yaml").is_file() else [PACKAGED_PARAMS]
    missing = [name for name in params_files if not Path(name).is_file()]
    if missing:
        raise MerflowError(f"params file {missing[0]} does not exist")
    return load_params(*params_files)


def _given(args: argparse.Namespace, kwargs: dict, keys: Sequence[str]) -> dict:
    """`kwargs` with the command-line options among `keys` that were given."""
    return {**kwargs, **{key: getattr(args, key) for key in keys if getattr(args, key) is not None}}


def cmd_synth(args: argparse.Namespace) -> None:
    from pipeline.datasets.long_layouts import LONG_LAYOUTS
    from pipeline.datasets.synth_writers import generate_synthetic
    from pipeline.paths import SYNTH_DIR
    from pipeline.stages import stage_params
    if args.layout in LONG_LAYOUTS:
        _synth_long_videos(args)
        return
    for flag in ("seconds", "videos_per_subject"):
        if getattr(args, flag) is not None:
            raise MerflowError(f"--{flag.replace('_', '-')} is for the long-video layouts "
                               f"({', '.join(LONG_LAYOUTS)}), not {args.layout}")
    kwargs = _given(args, stage_params(_load(args.params), "synth"),
                    ("seed", "subjects", "clips_per_subject", "frames_min", "frames_max", "amplitude_px"))
    out = Path(args.out or SYNTH_DIR.format(layout=args.layout))
    generate_synthetic(args.layout, out, **kwargs)
    print(f"wrote a synthetic {args.layout} dataset to {out}")


def _synth_long_videos(args: argparse.Namespace) -> None:
    """A synthetic long-video tree: synth's faces, size, noise and seed, synth_long_videos's lengths."""
    from pipeline.datasets.long_video_synth import SYNTH_KEYS, generate_long_synthetic
    from pipeline.paths import SYNTH_DIR
    for flag in ("clips_per_subject", "frames_min", "frames_max"):
        if getattr(args, flag) is not None:
            raise MerflowError(f"--{flag.replace('_', '-')} is for the short-clip layouts; {args.layout} takes "
                               "--seconds and --videos-per-subject")
    params = _load(args.params)
    kwargs = _given(args, {**{key: params["synth"][key] for key in SYNTH_KEYS}, **params["synth_long_videos"]},
                    ("seed", "subjects", "videos_per_subject", "seconds", "amplitude_px"))
    out = Path(args.out or SYNTH_DIR.format(layout=args.layout))
    generate_long_synthetic(args.layout, out, **kwargs)
    print(f"wrote a synthetic {args.layout} dataset to {out}")


def cmd_check_long_videos(args: argparse.Namespace) -> int:
    """A long-video tree's counts, the quirks read around (kept) and what had to be left out; exit status 1
    if anything was left out."""
    from collections import Counter

    from pipeline.datasets.long_layouts import LONG_LAYOUTS, read_long_videos
    for flag in ("mapping", "variant"):
        if getattr(args, flag):
            raise MerflowError(f"--{flag} does not apply to the long-video layout {args.layout}")
    videos, intervals, problems = read_long_videos(Path(args.path), args.layout)
    subjects = sorted({video.subject for video in videos} | set(intervals["subject"]))
    types = Counter(intervals["type"])
    shown = ", ".join(subjects[:NOTES_LISTED]) + (f" and {len(subjects) - NOTES_LISTED} more"
                                                  if len(subjects) > NOTES_LISTED else "")
    print(f"{args.path} ({args.layout}, {LONG_LAYOUTS[args.layout].title}): {len(videos)} videos, "
          f"{sum(len(v.frames) for v in videos)} frames, {len(subjects)} subjects ({shown}); "
          f"{len(intervals)} intervals: macro {types.get('macro', 0)}, micro {types.get('micro', 0)}")
    kept = [problem for problem in problems if problem.kept]
    left_out = [problem for problem in problems if not problem.kept]
    if kept:
        print(f"{len(kept)} note(s): read around, data kept:")
        for problem in kept:
            print(f"  - {problem}")
    if left_out:
        print(f"{len(left_out)} problem(s): left out:")
        for problem in left_out:
            print(f"  - {problem}")
        return 1
    print("no problems")
    return 0


def cmd_check_dataset(args: argparse.Namespace) -> int:
    """Every problem of a dataset tree at once (the index stage's checks); exit status 1 if any."""
    from collections import Counter

    from pipeline.datasets.layouts import LAYOUTS
    from pipeline.datasets.long_layouts import LONG_LAYOUTS
    from pipeline.index import check_dataset
    if args.layout in LONG_LAYOUTS:
        return cmd_check_long_videos(args)
    params = _load(args.params)
    args.mapping = args.mapping or LAYOUTS[args.layout].mapping
    if args.mapping not in params["mappings"]:
        raise MerflowError(f"--mapping {args.mapping!r} is not a key of `mappings:` ({', '.join(params['mappings'])})")
    mapping = params["mappings"][args.mapping]
    records, problems, left_out = check_dataset(Path(args.path), layout=args.layout, emotions=mapping["emotions"],
                                                classes=mapping["classes"], variant=args.variant)
    bad = {problem.clip_id for problem in problems}
    good = [record for record in records if record["clip_id"] not in bad]
    classes = Counter(record["label"] for record in good)
    print(f"{args.path} ({args.layout}, mapping {args.mapping}): {len(good)} good clips from "
          f"{len({r['subject'] for r in good})} subjects; "
          + ", ".join(f"{name} {classes.get(name, 0)}" for name in mapping["classes"]))
    if left_out:
        print(f"{len(left_out)} clips left out by the mapping: "
              + ", ".join(f"{e} {n}" for e, n in sorted(Counter(p.reason.split("'")[1] for p in left_out).items())))
    estimated = [r["clip_id"] for r in good if r["apex_source"] == "estimated"]
    if estimated:
        shown = ", ".join(estimated[:NOTES_LISTED]) + (f" and {len(estimated) - NOTES_LISTED} more"
                                                        if len(estimated) > NOTES_LISTED else "")
        print(f"{len(estimated)} clip(s) without a coded apex (the align stage estimates it): {shown}")
    notes = [(r["clip_id"], note) for r in good for note in r["notes"] if "no apex coded" not in note]
    if notes:
        print(f"{len(notes)} note(s): read differently from the sheet, clips kept:")
        for clip_id, note in notes:
            print(f"  - {clip_id}: {note}")
    if problems:
        print(f"{len(problems)} problem(s) in {len(bad)} clip(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("no problems")
    return 0


def cmd_stage(args: argparse.Namespace) -> None:
    from pipeline.ablation_jobs import DVC_STAGES, run_ablation_stage
    params = _load(args.params)
    if os.environ.get("DVC_STAGE"):
        _check_dvc_yaml(params, args.params)
    if args.name in DVC_STAGES:         # the ablation grid (pipeline/ablations.py)
        run_ablation_stage(params, args.name, ds=args.dataset, protocol=args.protocol, fold=args.fold, key=args.key,
                           method=args.method)
        return
    from pipeline.runner import run_stage
    run_stage(params, args.name, ds=args.dataset, protocol=args.protocol, method=args.method,
              seed=args.seed, fold=args.fold)


def _check_dvc_yaml(params: dict, files: Sequence[str] | None) -> None:
    """Under `dvc repro` (DVC sets DVC_STAGE): refuse to run a stage of a dvc.yaml that the params no longer
    make. Its stages, paths and run folder are those of the params it was generated from; run with other
    params they would write a Table 2 that DVC does not track, or read folds that were never trained."""
    from pipeline.dvcgen import dvc_yaml
    dvc_file = Path(os.environ.get("DVC_ROOT", ".")) / "dvc.yaml"
    if dvc_file.is_file() and dvc_file.read_text() != dvc_yaml(params, files):
        given = " ".join(files or ["params.yaml"])
        raise MerflowError(f"{dvc_file} was generated from other params than {given} now hold (or by another "
                           f"merflow): run `merflow dvc-yaml{' --params ' + given if files else ''}`, then `dvc repro`")


def cmd_dvc_yaml(args: argparse.Namespace) -> None:
    from pipeline.dvcgen import dvc_yaml
    text = dvc_yaml(_load(args.params), args.params)
    if args.check:
        if Path(args.out).read_text() != text:
            given = ", ".join(args.params or ["params.yaml"])
            raise MerflowError(f"{args.out} is out of date with {given}: run `merflow dvc-yaml`")
        print(f"{args.out} is up to date")
        return
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


def cmd_predict(args: argparse.Namespace) -> None:
    from pipeline.predict import format_prediction, predict
    result = predict(args.input, args.model, _load(args.params) if args.params else None, fps=args.fps)
    print(json.dumps(result, indent=2) if args.json else format_prediction(result))


def cmd_spot(args: argparse.Namespace) -> None:
    """The macro- and micro-expressions of a recording (or of every video of a long-video dataset tree)."""
    import pandas as pd

    from pipeline.spotting.run import spot_dataset_stage, spot_recording
    section = _load(args.params)["spotting"]
    out = Path(args.out or Path("results") / "spot" / Path(args.input).resolve().name)
    if args.layout:
        spot_dataset_stage(Path(args.input), args.layout, out, spotter="mdmd", registration=section["registration"],
                           params=section["mdmd"])
        print(pd.read_csv(out / "scores.csv").to_string(index=False))
    else:
        intervals = spot_recording(Path(args.input), out, args.fps, registration=section["registration"],
                                   mdmd=section["mdmd"])
        print(intervals.to_string(index=False) if len(intervals) else "no interval spotted")
    print(f"\nintervals: {out / 'intervals.csv'}   curves: {out / 'curves'}/   figures: {out / 'figures'}/   "
          f"frames read around: {out / 'problems.csv'}")


def _inspect_model(path: Path) -> None:
    """model.pt: what the network is, what it was trained on and with, and its provenance."""
    from pipeline.predict import load_checkpoint
    checkpoint = load_checkpoint(path)
    n_weights = sum(int(t.numel()) for t in checkpoint["state_dict"].values())
    print(f"{path}")
    print(f"  model: {json.dumps(checkpoint['config'])} ({n_weights} numbers in the state dict)")
    print(f"  classes: {json.dumps(checkpoint['classes'])}")
    if "normalisation" in checkpoint:
        print(f"  normalisation: {json.dumps(checkpoint['normalisation'])}")
    print(f"  params: {json.dumps(checkpoint.get('params', {}))}")
    for key, value in checkpoint["provenance"].items():
        print(f"  {key}: {value}")


def cmd_inspect(args: argparse.Namespace) -> None:
    import h5py

    from pipeline.artifacts import read_provenance
    path = Path(args.artifact)
    if not path.is_file():
        raise MerflowError(f"{path}: no such file")
    if path.suffix == ".pt":
        _inspect_model(path)
        return
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


def cmd_audit(args: argparse.Namespace) -> int:
    """Per stage: the artifact, its params and inputs, and whether it is up to date; exit 1 if any is
    stale or missing."""
    from pipeline.audit import MISSING, STALE, audit_json, audit_pipeline, format_audit, run_line
    params = _load(args.params)
    results = audit_pipeline(params)
    print(audit_json(results) if args.json else format_audit(results, verbose=not args.brief) + "\n" + run_line(params))
    return 1 if any(r.status in (STALE, MISSING) for r in results) else 0


def cmd_table(args: argparse.Namespace) -> None:
    """Table 2's headline columns, one row a line (the CSV has every column)."""
    import pandas as pd

    from pipeline.aggregate import headline_text
    print(headline_text(pd.read_csv(args.table)))
    print(f"\nEvery column (intervals, seed spread, per-subject means): {args.table}")


def build_parser() -> argparse.ArgumentParser:
    from pipeline.ablation_jobs import DVC_STAGES
    from pipeline.datasets.layouts import LAYOUTS
    from pipeline.datasets.long_layouts import LONG_LAYOUTS
    from pipeline.stages import STAGES
    parser = argparse.ArgumentParser(prog="merflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    params_help = ("params files, later ones overriding earlier ones (default: ./params.yaml, or merflow's own "
                   "defaults where there is none)")
    layouts = [*LAYOUTS, *LONG_LAYOUTS]       # short clips for recognition, long videos for spotting

    synth = sub.add_parser("synth", help="generate a synthetic dataset in a real dataset's layout")
    synth.add_argument("--layout", default="casme2", choices=layouts)
    synth.add_argument("--out", help="output folder (default: data/synthetic/LAYOUT)")
    synth.add_argument("--params", nargs="+", help=params_help)
    synth.add_argument("--seed", type=int)
    synth.add_argument("--subjects", type=int)
    synth.add_argument("--clips-per-subject", type=int)
    synth.add_argument("--frames-min", type=int)
    synth.add_argument("--frames-max", type=int)
    synth.add_argument("--amplitude-px", type=float)
    synth.add_argument("--seconds", type=float, help="long-video layouts: length of each video")
    synth.add_argument("--videos-per-subject", type=int, help="long-video layouts")
    synth.set_defaults(func=cmd_synth)

    check = sub.add_parser("check-dataset", help="report every problem of a dataset tree (the index stage's "
                                                 "checks); exit status 1 if there are any")
    check.add_argument("path", help="the dataset's root folder")
    check.add_argument("--layout", required=True, choices=layouts)
    check.add_argument("--mapping", help="short-clip layouts: key of `mappings:` in the params (default: the "
                                         "layout's own: "
                                         + ", ".join(f"{name} {entry.mapping}" for name, entry in LAYOUTS.items())
                                         + ")")
    check.add_argument("--variant", help="; ".join(f"{name}: {' or '.join(entry.variants)}"
                                                   for name, entry in LAYOUTS.items() if len(entry.variants) > 1))
    check.add_argument("--params", nargs="+", help=params_help)
    check.set_defaults(func=cmd_check_dataset)

    stage = sub.add_parser("stage", help="run one pipeline stage (what each DVC stage runs)")
    stage.add_argument("name", choices=[*STAGES, *DVC_STAGES])
    stage.add_argument("--dataset", help="dataset name (for synth: the layout)")
    stage.add_argument("--protocol")
    stage.add_argument("--method")
    stage.add_argument("--seed", type=int, help="a network's seed (default: the first of params' seeds)")
    stage.add_argument("--fold", type=int)
    stage.add_argument("--key", help="an ablation setting's artifact key (the ablation_* stages)")
    stage.add_argument("--params", nargs="+", help=params_help)
    stage.set_defaults(func=cmd_stage)

    dvc = sub.add_parser("dvc-yaml", help="write dvc.yaml from params.yaml (or --check that it is current)")
    dvc.add_argument("--params", nargs="+", help=params_help)
    dvc.add_argument("--out", default="dvc.yaml")
    dvc.add_argument("--check", action="store_true")
    dvc.set_defaults(func=cmd_dvc_yaml)

    inspect = sub.add_parser("inspect", help="shape, params and provenance of an HDF5 artifact or a model.pt")
    inspect.add_argument("artifact")
    inspect.set_defaults(func=cmd_inspect)

    audit = sub.add_parser("audit", help="per stage: the artifact, its params, its inputs and whether it is up "
                                         "to date with params.yaml and the files now (exit 1 if any is not)")
    audit.add_argument("--params", nargs="+", help=params_help)
    audit.add_argument("--brief", action="store_true", help="one line per artifact")
    audit.add_argument("--json", action="store_true", help="print the audit as JSON")
    audit.set_defaults(func=cmd_audit)

    table = sub.add_parser("table", help="print Table 2's headline: accuracy, UF1 and UAR with their intervals")
    table.add_argument("table", nargs="?", default="results/table2.csv", help="default: results/table2.csv")
    table.set_defaults(func=cmd_table)

    predict = sub.add_parser("predict", help="class probabilities of a new video or folder of frames")
    predict.add_argument("input", help="a video file (anything OpenCV reads) or a folder of jpg/png/bmp frames, "
                                       "onset to offset")
    predict.add_argument("--model", required=True, help="a trained model, results/.../seed{s}/fold{k}/model.pt")
    predict.add_argument("--params", nargs="+", help="params files: refuse the model if it was trained with "
                                                     "other align/magnify/tensors params (default: use the "
                                                     "params the model records)")
    predict.add_argument("--fps", type=float, help="the input's frame rate (default: the video's own; for a "
                                                   "folder of frames, the model's magnify.reference_fps)")
    predict.add_argument("--json", action="store_true", help="print the result as JSON")
    predict.set_defaults(func=cmd_predict)

    spot = sub.add_parser("spot", help="find the macro- and micro-expressions in a long video or folder of frames "
                                       "(the training-free MDMD spotter)")
    spot.add_argument("input", help="a video file (anything OpenCV reads) or a folder of jpg/png/bmp frames; with "
                                    "--layout, a long-video dataset's root")
    spot.add_argument("--layout", choices=list(LONG_LAYOUTS), help="spot every video of this dataset tree and "
                                                                   "score the intervals against its sheet")
    spot.add_argument("--fps", type=float, help="the input's frame rate (default: the video's own; required for "
                                                "a folder of frames)")
    spot.add_argument("--out", help="output folder (default: results/spot/<the input's name>)")
    spot.add_argument("--params", nargs="+", help=params_help)
    spot.set_defaults(func=cmd_spot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)          # None, or an exit status (check-dataset: 1 when it finds problems)
    except MerflowError as error:
        print(f"merflow: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:             # a path the user gave that cannot be read or written
        print(f"merflow: error: {error}", file=sys.stderr)
        return 1
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
