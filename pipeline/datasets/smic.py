"""SMIC (Spontaneous Micro-expression Corpus) as its owners distribute it: no coding sheet, the label
is the folder a clip sits in.

    <root>/HS/s1/micro/negative/s1_ne_01/image106564.bmp ...      variant "HS" (the default), 100 fps
    <root>/VIS/s1/micro/positive/s1_po_01/...                     variant "VIS", 25 fps
    <root>/NIR/s1/micro/surprise/s1_sur_01/...                    variant "NIR", 25 fps

Classes: positive, negative, surprise (SMIC has only these three). A clip folder holds its frames
from onset to offset, numbered by the digits at the end of each file name (image106564.bmp; the
owners' cropped copies are reg_image106564.bmp, also read). SMIC codes no apex: every record's apex is
estimated by the align stage (apex_source "estimated", pipeline/apex.py). With no sheet there is
nothing to correct: a correction naming a SMIC clip is an error. `non_micro/` folders
(non-micro-expression sequences) are not clips and are skipped. Clip folder names encode subject
and class (s1_po_01): a folder whose name disagrees with where it sits is reported,
as is a subject folder with no clips.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.datasets.frames import IMAGE_SUFFIXES, MISSING_FRAMES_LISTED, numbered_files, sub_folders
from pipeline.datasets.sheets import ClipProblem, Correction, map_emotion
from pipeline.errors import DatasetError, ParamsError

VARIANTS = ("HS", "VIS", "NIR")
CLASS_FOLDERS = {"positive": "po", "negative": "ne", "surprise": "sur"}   # folder -> code in clip names
FRAME_PATTERN = re.compile(r"\D*?(\d+)(?:" + "|".join(re.escape(s) for s in IMAGE_SUFFIXES) + ")", re.IGNORECASE)
CLIP_NAME = re.compile(r"(s\d+)_([a-z]+)_(\d+)", re.IGNORECASE)


def read_smic(root: Path, emotions: dict[str, str | None], classes: list[str], variant: str | None = None,
              corrections: Sequence[Correction] = ()) -> tuple[list[dict], list[ClipProblem]]:
    """Records of the clips without problems (sorted by clip id) and the problems found."""
    root = Path(root)
    if corrections:
        raise ParamsError(f"SMIC has no coding sheet to correct (correction {corrections[0]})")
    variant = variant or "HS"
    if variant not in VARIANTS:
        raise ParamsError(f"SMIC variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    camera_root = root / variant
    if not camera_root.is_dir():
        raise DatasetError(f"SMIC at {root}", [f"no {variant}/ folder in {root} (variant {variant})"])
    subjects = [name for name in sub_folders(camera_root) if re.fullmatch(r"s\d+", name)]
    if not subjects:
        raise DatasetError(f"SMIC at {root}", [f"no subject folders s1, s2, ... in {camera_root}"])

    records: list[dict] = []
    problems: list[ClipProblem] = []
    for subject in subjects:
        micro = camera_root / subject / "micro"
        clip_folders = []
        if micro.is_dir():
            for class_folder in sub_folders(micro):
                clip_folders += [(class_folder, micro / class_folder / name)
                                 for name in sub_folders(micro / class_folder)]
        if not clip_folders:
            problems.append(ClipProblem(subject, micro, "subject has no micro-expression clips"))
            continue
        for class_folder, folder in clip_folders:
            record, clip_problems = read_clip(folder, subject, class_folder, emotions, classes)
            problems += clip_problems
            if record is not None and not clip_problems:
                records.append(record)
    return sorted(records, key=lambda r: r["clip_id"]), problems


def read_clip(folder: Path, subject: str, class_folder: str, emotions: dict[str, str | None],
              classes: list[str]) -> tuple[dict | None, list[ClipProblem]]:
    """One clip folder -> (record, problems); record is None when the clip is left out or has no frames."""
    clip_id = folder.name
    emotion = class_folder.lower()
    label, label_index, problems = map_emotion(clip_id, emotion, emotions, classes, folder.parent)
    if problems and problems[0].left_out:
        return None, problems
    name = CLIP_NAME.fullmatch(folder.name)
    if name is None or name.group(1).lower() != subject.lower():
        problems.append(ClipProblem(clip_id, folder, f"clip folder name is not {subject}_<class>_<number>"))
    elif CLASS_FOLDERS.get(emotion) not in (None, name.group(2).lower()):
        problems.append(ClipProblem(clip_id, folder, f"clip folder name says {name.group(2)!r} but it is in "
                                                     f"{class_folder}/ ({CLASS_FOLDERS[emotion]!r} expected)"))
    files = numbered_files(folder, FRAME_PATTERN)
    if not files:
        return None, problems + [ClipProblem(clip_id, folder, "clip folder has no frame images")]
    onset, offset = min(files), max(files)
    gaps = [n for n in range(onset, offset + 1) if n not in files]
    if gaps:
        listed = ", ".join(str(n) for n in gaps[:MISSING_FRAMES_LISTED])
        more = f" and {len(gaps) - MISSING_FRAMES_LISTED} more" if len(gaps) > MISSING_FRAMES_LISTED else ""
        problems.append(ClipProblem(clip_id, folder, f"frames {onset}..{offset} have gaps: frame(s) {listed}{more} "
                                                     "missing"))
    if offset - onset < 2:
        problems.append(ClipProblem(clip_id, folder, f"clip has {offset - onset + 1} frame(s); at least 3 needed"))
    record = {"clip_id": clip_id, "subject": subject, "episode": folder.name, "emotion": emotion, "label": label,
              "label_index": label_index, "onset": onset, "apex": None, "apex_source": "estimated", "offset": offset,
              "n_frames": offset - onset + 1, "frames": [files[n] for n in sorted(files)], "notes": []}
    return record, problems
