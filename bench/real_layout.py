"""The whole pipeline on a tree laid out like the real CASME II (its 256 clips, real frame numbering, the
sheet's quirks; tests/casme2_like.py), with the README's own-data snippet as the overlay.

Frames are hard links to the frames of a small synthetic CASME II (real face photos), so every clip has
a face to align; the motion is not the real one, so the accuracies mean nothing. What it shows: every
clip of the real sheet goes from check-dataset to a test fold's predictions.csv, each exactly once.

    .venv/bin/python bench/real_layout.py /tmp/real_layout          # tiny model (tests/tiny.yaml)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.datasets.synth_writers import generate_casme2  # noqa: E402
from tests.casme2_like import write_casme2_like  # noqa: E402

FACES = {"seed": 0, "subjects": 2, "clips_per_subject": 2, "frames_min": 12, "frames_max": 16, "width": 640,
         "height": 480, "face_width_px": 280, "amplitude_px": 2.8, "noise_sigma": 1.0, "head_jitter_px": 0.3,
         "jpeg_quality": 95}


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- own-data-snippet:start -->")[1].split("<!-- own-data-snippet:end -->")[0]
    return block.split("```yaml")[1].split("```")[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    out = args.out.resolve()
    faces, root, work = out / "faces", out / "CASME2", out / "work"
    if not faces.exists():
        generate_casme2(faces, **FACES)
    clip_dirs = sorted(p for p in (faces / "CASME2_RAW_selected").glob("sub*/*") if p.is_dir())
    clip_frames = [sorted(d.glob("img*.jpg"), key=lambda p: int(re.findall(r"\d+", p.name)[0])) for d in clip_dirs]
    if not root.exists():
        root.mkdir(parents=True)
        write_casme2_like(root, lambda subject, clip, n: clip_frames[clip % len(clip_frames)][
            n % len(clip_frames[clip % len(clip_frames)])])
    work.mkdir(parents=True, exist_ok=True)
    (work / "my.yaml").write_text(readme_snippet().replace("/data/CASME2", str(root)))
    timings = {}
    start = time.monotonic()
    check = subprocess.run([str(REPO / ".venv" / "bin" / "merflow"), "check-dataset", str(root), "--layout", "casme2"],
                           capture_output=True, text=True, cwd=work)
    timings["check-dataset"] = time.monotonic() - start
    print(check.stdout.strip().splitlines()[0], f"(exit {check.returncode})")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                          str(work), "--cores", str(args.cores), "--configfile", str(REPO / "tests" / "tiny.yaml"),
                          str(work / "my.yaml"), "--", "results/table2.csv"], capture_output=True, text=True)
    timings["snakemake"] = time.monotonic() - start
    if run.returncode != 0:
        print(run.stderr[-4000:])
        return 1
    index = pd.read_csv(work / "data" / "casme2" / "index.csv", keep_default_na=False)
    for method_dir in sorted((work / "results" / "casme2" / "kfold5").iterdir()):
        tested = pd.concat([pd.read_csv(f).assign(fold=f.parent.name)
                            for f in sorted(method_dir.glob("fold*/predictions.csv"))])
        folds_per_clip = tested.drop_duplicates(["clip_id", "fold"]).groupby("clip_id").size()
        accuracy = tested.groupby("fold").apply(lambda f: (f["true"] == f["predicted"]).mean()).round(3)
        print(f"{method_dir.name}: {tested['clip_id'].nunique()} clips tested of {len(index)} indexed; "
              f"{len(tested)} prediction rows; every clip in exactly one test fold: "
              f"{bool((folds_per_clip == 1).all())}; fold accuracies (meaningless here) {accuracy.tolist()}")
    print(f"apex estimated: {(index['apex_source'] == 'estimated').sum()}, notes: {(index['notes'] != '').sum()}")
    print("seconds: " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
