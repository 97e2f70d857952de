"""Spotting speed and memory on a long synthetic video: frames per second of `merflow spot`'s work (decoding,
finding the face in the key frames, aligning every frame into the HDF5 cache, the MDMD curves with the micro
and the macro window, the intervals, the figure) and the process's peak resident memory.

    .venv/bin/python bench/spotting.py --layout samm_lv --seconds 20     # one 200 fps video, 4000 frames
    .venv/bin/python bench/spotting.py --layout casme_sq --seconds 60    # one 30 fps video, 1800 frames

The video is written first with merflow's synthetic writer (its time is not counted), at the `synth` params'
frame size (640 x 480). Run it alone: the figure is wall time on this machine's cores.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.config import load_params  # noqa: E402
from pipeline.datasets.long_video_synth import SYNTH_KEYS, generate_long_synthetic  # noqa: E402
from pipeline.spotting.run import spot_dataset_stage  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=("casme_sq", "samm_lv"), default="samm_lv")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flow", choices=("dis", "tvl1"), default="dis")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    synth = {key: params["synth"][key] for key in SYNTH_KEYS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / args.layout
        generate_long_synthetic(args.layout, root, subjects=1, videos_per_subject=1, seconds=args.seconds, **synth)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        spot_dataset_stage(root, args.layout, Path(tmp) / "spot", spotter="mdmd",
                           registration=params["spotting"]["registration"],
                           params={**params["spotting"]["mdmd"], "flow": args.flow})
        seconds = time.perf_counter() - started
        frames = sum(1 for _ in root.rglob("*.jpg"))
        scores = (Path(tmp) / "spot" / "scores.csv").read_text()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{args.layout}, {args.seconds:g} s video, {frames} frames of {synth['width']}x{synth['height']}, flow "
          f"{args.flow}: {seconds:.1f} s, {frames / seconds:.1f} frames/s; peak resident {peak / 1024:.0f} MiB "
          f"(before spotting {before / 1024:.0f} MiB)\n{scores}")


if __name__ == "__main__":
    main()
