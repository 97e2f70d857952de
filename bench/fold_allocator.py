"""One MER-RCNN fold of the demo through the training stage, with and without `keep_freed_memory` (glibc's
malloc keeping freed memory instead of handing every block over 32 MB back to the kernel): wall time, page
faults and peak resident size of the process.

    .venv/bin/python bench/fold_allocator.py --store DIR [--epochs 1] [--keep on|off]

DIR holds a demo run's `data/casme2/tensors.h5` and `data/casme2/folds/kfold5.csv` (`make demo`, or the demo
config up to those two targets). Run it once per setting, alternately, in fresh processes: the allocator's
settings hold for the whole process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pipeline.train as train  # noqa: E402
from pipeline.config import load_params  # noqa: E402
from pipeline.stages import stage_params  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a demo run's folder (data/casme2/ under it)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--keep", choices=("on", "off"), default="on")
    args = parser.parse_args()
    if args.keep == "off":
        train.keep_freed_memory = lambda: False     # the stage calls it through the module
    params = load_params(REPO / "params.yaml", REPO / "workflow" / "configs" / "demo.yaml")
    kwargs = {**stage_params(params, "train", ds="casme2", method="rcnn"), "max_epochs": args.epochs}
    data = args.store / "data" / "casme2"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        train.train_fold_stage(data / "tensors.h5", data / "folds" / "kfold5.csv", args.fold, Path(out), **kwargs)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"keep_freed_memory {args.keep}: {time.perf_counter() - started:.1f} s wall, "
          f"{usage.ru_minflt} minor page faults, peak resident {usage.ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
