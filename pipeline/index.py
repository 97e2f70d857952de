"""The index stage: a dataset's annotation sheet and frames -> data/{ds}/index.csv.

A dataset adapter (pipeline/datasets/) reads the layout its owners distribute and reports what it can
see from the sheet and the folders; this stage then opens every frame file, so that a missing,
empty, truncated or undecodable frame, or a clip whose frames differ in size, is caught here, with
the clip and the file named, and not deep inside a later stage. With on_bad_clip "fail" every problem
is reported at once; with "drop" the bad clips are left out and listed in excluded.csv.

index.csv has one row per clip, sorted by clip id; `frames` is the ';'-joined frame paths (the
dataset root joined with the layout's relative path) in temporal order. `apex` is blank where the
sheet codes none (`apex_source` "estimated": the align stage estimates it, pipeline/apex.py) and
`notes` says what was read differently from the sheet: the corrections applied
(pipeline/datasets/corrections.csv and params `index.corrections`), an offset past the last frame file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.artifacts import atomic_output
from pipeline.datasets.corrections import corrections_for
from pipeline.datasets.layouts import layout as layout_entry
from pipeline.datasets.sheets import ClipProblem
from pipeline.errors import BadInputError, DatasetError, ParamsError

INDEX_COLUMNS = ["dataset", "clip_id", "subject", "episode", "emotion", "label", "label_index", "onset", "apex",
                 "apex_source", "offset", "n_frames", "fps", "notes", "frames"]
REGISTERED_COLUMN = "registered"   # written only for a dataset of registered face crops (dataset.<ds>.registered)
EXCLUDED_COLUMNS = ["clip_id", "file", "reason"]
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


def index_stage(out_csv: Path, excluded_csv: Path, *, dataset: str, layout: str, root: Path, fps: float,
                emotions: dict[str, str | None], classes: list[str], on_bad_clip: str,
                variant: str | None = None, registered: bool = False, corrections: list[dict] | None = None) -> None:
    """Write index.csv (good clips) and excluded.csv (every clip not indexed: problems of dropped clips
    and clips the mapping leaves out; header only if none). With `registered` (the frames are already
    registered face crops, e.g. CASME II's Cropped/) every clip is marked so, and the align stage only
    resizes its frames. `corrections` are the user's own corrections of this dataset's sheet (params
    `index.corrections`), applied with those merflow ships."""
    if on_bad_clip not in ("fail", "drop"):
        raise ParamsError(f"index.on_bad_clip must be 'fail' or 'drop', not {on_bad_clip!r}")
    records, problems, left_out = check_dataset(root, layout=layout, emotions=emotions, classes=classes,
                                                variant=variant, dataset=dataset, corrections=corrections)
    if problems and on_bad_clip == "fail":
        raise DatasetError(dataset, problems)
    bad_clips = {problem.clip_id for problem in problems}
    good = [record for record in records if record["clip_id"] not in bad_clips]
    if not good:
        raise DatasetError(dataset, problems or [f"no clips found under {root}"
                                                 + (f" ({len(left_out)} left out by the mapping)" if left_out else "")])

    with atomic_output(out_csv) as tmp_index, atomic_output(excluded_csv) as tmp_excluded:
        rows = [index_row(record, dataset, fps) for record in good]
        if registered:
            rows = [row | {REGISTERED_COLUMN: 1} for row in rows]
        write_csv(tmp_index, INDEX_COLUMNS + [REGISTERED_COLUMN] * registered, rows)
        write_csv(tmp_excluded, EXCLUDED_COLUMNS,
                  [{"clip_id": p.clip_id, "file": p.path, "reason": p.reason} for p in problems + left_out])
    print(f"{dataset}: indexed {len(good)} clips, dropped {len(bad_clips)} ({len(problems)} problems), "
          f"left out {len(left_out)} by the label mapping; {sum(r['apex_source'] == 'estimated' for r in good)} "
          "without a coded apex (estimated at the align stage)")
    for record in good:
        for note in record["notes"]:
            print(f"  note: {record['clip_id']}: {note}")


def check_dataset(root: Path, *, layout: str, emotions: dict[str, str | None], classes: list[str],
                  variant: str | None = None, dataset: str | None = None,
                  corrections: list[dict] | None = None) -> tuple[list[dict], list[ClipProblem], list[ClipProblem]]:
    """Read a dataset tree with its layout's adapter and open every frame of the clips it keeps.

    Returns (records, problems, left_out): every clip record the adapter could build (including those
    with problems), every problem at once, and the clips the mapping leaves out on purpose. What
    `merflow check-dataset` reports and what the index stage acts on.
    """
    dataset = dataset or layout
    reader = layout_entry(layout, f"dataset.{dataset}.layout").reader
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(dataset, [f"dataset root {root} does not exist (dataset.{dataset}.root)"])
    records, found = reader(root, emotions, classes, variant, corrections=corrections_for(layout, corrections or []))
    left_out = [problem for problem in found if problem.left_out]
    problems = [problem for problem in found if not problem.left_out]
    problems += validate_frames(records)
    return records, problems, left_out


def validate_frames(records: list[dict]) -> list[ClipProblem]:
    """Open every frame of every clip; one problem per bad frame, and per frame whose size differs
    from the clip's first good frame."""
    problems = []
    progress = tqdm(total=sum(len(r["frames"]) for r in records), unit="frame", desc="checking frames")
    for record in records:
        first_size = None
        for path in record["frames"]:
            progress.update()
            try:
                size = frame_size(path, record["clip_id"])
            except BadInputError as error:
                problems.append(ClipProblem(error.clip_id, error.path, error.reason))
                continue
            if first_size is None:
                first_size = size
            elif size != first_size:
                problems.append(ClipProblem(record["clip_id"], path, f"frame is {size[0]}x{size[1]} px, the clip's "
                                                                     f"first frame {first_size[0]}x{first_size[1]}"))
    progress.close()
    return problems


def frame_size(path: Path, clip_id: str) -> tuple[int, int]:
    """(width, height) of a frame that exists, is not empty and decodes, else BadInputError.

    JPEGs are checked for their end-of-image marker, because libjpeg decodes a truncated file without
    an error (grey bottom rows), and decoded at 1/8 size (cv2.IMREAD_REDUCED_GRAYSCALE_8, ~8x
    faster); their exact size comes from the frame header.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInputError(clip_id, path, "frame file is missing") from None
    except OSError as error:
        raise BadInputError(clip_id, path, f"frame file cannot be read ({error.strerror})") from None
    if not data:
        raise BadInputError(clip_id, path, "frame file is empty (0 bytes)")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if data.startswith(JPEG_START):
        # 0xFFD9 cannot occur inside entropy-coded data (an 0xFF byte there is followed by 0x00), so
        # finding it near the end means the file is complete; a little trailing padding is tolerated.
        if JPEG_END not in data[-64:]:
            raise BadInputError(clip_id, path, "JPEG is truncated (no end-of-image marker)")
        size = jpeg_size(data)
        if size is None or cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
            raise BadInputError(clip_id, path, "frame does not decode as a JPEG image")
        return size
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise BadInputError(clip_id, path, "frame does not decode as an image")
    return image.shape[1], image.shape[0]


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header, or None if there is none before the scan."""
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:                                   # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:         # markers without a length field
            position += 2
            continue
        if marker == 0xDA:                                   # start of scan: no frame header came first
            return None
        length = int.from_bytes(data[position + 2:position + 4], "big")
        # SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC): length, precision, height, width.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if position + 9 > len(data):
                return None
            height = int.from_bytes(data[position + 5:position + 7], "big")
            width = int.from_bytes(data[position + 7:position + 9], "big")
            return width, height
        position += 2 + length
    return None


def index_row(record: dict, dataset: str, fps: float) -> dict:
    row = {key: record[key] for key in INDEX_COLUMNS if key in record}
    return row | {"dataset": dataset, "apex": "" if record["apex"] is None else record["apex"], "fps": f"{fps:g}",
                  "notes": " | ".join(record["notes"]),
                  "frames": ";".join(Path(p).as_posix() for p in record["frames"])}


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
