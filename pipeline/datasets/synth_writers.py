"""Every layout's synthetic writer: the trees of CASME II, CASME, SMIC, SAMM, CAS(ME)3 Part A, MMEW and
4DME as their owners ship them, with the same subjects, motion and noise (pipeline/datasets/synth.py: real
face photos moved by landmark-driven micro-expressions); what differs is the sheets, names and frame
numbering:

    casme2   CASME2-coding-synthetic.xlsx (Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame,
             Action Units, Estimated Emotion) + CASME2_RAW_selected/sub01/EP02_01f/img46.jpg
             (frames numbered from OnsetFrame to OffsetFrame; docs/datasets.md)
    casme    CASME_A/CASME_A-coding-synthetic.xls + CASME_A/Section A/sub01/EP07_1/EP07_1-46.jpg
             CASME_B/CASME_B-coding-synthetic.xls + CASME_B/Section B/sub02/EP03_2/EP03_2-046.jpg
             (.xls sheets written with xlwt; Section B zero-pads frame numbers to 3 digits; subjects are
             split between the sections, numbered on from A into B)
    smic     HS/s1/micro/{positive,negative,surprise}/s1_po_01/image146321.bmp (no sheet: the class is
             the folder; 3 classes)
    samm     SAMM_Micro_FACS_Codes_v2.xlsx (13 preamble rows above the header) + SAMM/006/006_1_2/006_01046.jpg
             (grey frames, 5-digit frame numbers, subjects from 006)
    casme3a  annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx (worksheet "label") +
             data/ME_A/spNO.1/a/color/355.jpg (two clips per task video, frame ranges apart)
    mmew     MMEW_Micro_Exp.xlsx + Micro_Expression/happiness/S01-01-001/1.jpg (frames from 1 in each clip)
    4dme     4DME_Labelling_Micro_release v1.xlsx + gray_micro/S01/S01_1st_001_01_1/S01_1st_001_01_1_02046.jpg
             (grey frames, numbered in the thousands as in the recordings)

Each tree also has synth_truth.csv (the motion commanded per clip) and SOURCES.txt. WRITERS has one writer
per layout of pipeline/datasets/layouts.py (same keys); `generate_synthetic` writes any layout,
atomically (built beside `out_dir`, then renamed).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

import openpyxl
import xlwt

from pipeline.datasets.layouts import layout as layout_entry
from pipeline.datasets.synth import (
    EXPRESSIONS,
    ClipPlan,
    action_units,
    build_tree,
    check_synth_params,
    plan_clips,
    planned,
    shifted,
    write_reproducible_zip,
    write_xlsx,
)

CASME2_SHEET = "CASME2-coding-synthetic.xlsx"
CASME2_FRAMES_DIR = "CASME2_RAW_selected"
CASME2_COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                  "Estimated Emotion"]
# The emotions the generator balances, grouped as the paper's 4 classes (Sec. IV-A, after MDMO), so
# that every subject shows every class. Which class an emotion *is* stays in params.yaml (mappings).
CASME2_GROUPS = {
    "positive": ["happiness"],
    "negative": ["disgust", "sadness", "fear"],
    "surprise": ["surprise"],
    "others": ["repression", "others"],
}

CASME_GROUPS = {"positive": ["happiness"], "negative": ["disgust", "sadness", "fear", "contempt"],
                "surprise": ["surprise"], "others": ["tense", "repression"]}
CASME_COLUMNS = ["Subject", "Filename", "OnsetF", "ApexF1", "ApexF2", "OffsetF", "Duration", "AU", "Emotion"]
CASME_SECTIONS = (("A", "CASME_A", "Section A"), ("B", "CASME_B", "Section B"))
CASME_SECTION_A_SHARE = 7 / 19          # the real split: sub01..sub07 in A, sub08..sub19 in B

SMIC_GROUPS = {"positive": ["positive"], "negative": ["negative"], "surprise": ["surprise"]}
SMIC_CODES = {"positive": "po", "negative": "ne", "surprise": "sur"}

SAMM_GROUPS = {"positive": ["Happiness"], "negative": ["Anger", "Contempt", "Disgust", "Fear", "Sadness"],
               "surprise": ["Surprise"], "others": ["Other"]}
SAMM_SHEET = "SAMM_Micro_FACS_Codes_v2.xlsx"
SAMM_COLUMNS = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
                "Type", "Action Units", "Notes", "Estimated Emotion"]
SAMM_PREAMBLE = ["SAMM - Spontaneous Actions and Micro-Movements (synthetic stand-in written by merflow)",
                 "", "Columns:", "Subject: participant number", "Filename: <subject>_<inducement>_<movement>",
                 "Inducement Code: the stimulus video", "Onset / Apex / Offset Frame: frame numbers",
                 "Duration: frames from onset to offset", "Type: Micro - 1/2", "Action Units: FACS codes",
                 "Notes: coder notes", "Estimated Emotion: the emotion the movement suggests", ""]
SAMM_FIRST_SUBJECT = 6

CASME3_GROUPS = {"positive": ["happy"], "negative": ["disgust", "fear", "anger", "sad"], "surprise": ["surprise"],
                 "others": ["others"]}
CASME3_SHEET = "annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion"]
CASME3_TASKS = "abcdefghijklm"
CASME3_CLIPS_PER_TASK = 2
CASME3_TASK_SPAN = 500                 # frames between the clips of one task video

MMEW_GROUPS = {"positive": ["happiness"], "negative": ["disgust", "fear", "sadness", "anger"],
               "surprise": ["surprise"], "others": ["others"]}
MMEW_EMOTIONS = ["happiness", "surprise", "anger", "disgust", "fear", "sadness", "others"]   # index in names
MMEW_SHEET = "MMEW_Micro_Exp.xlsx"
MMEW_COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "remarks", "Action Units",
                "Estimated Emotion"]

FOURD_GROUPS = {"positive": ["Positive"], "negative": ["Negative"], "surprise": ["Surprise"],
                "others": ["Repression", "Others"]}
FOURD_SHEET = "4DME_Labelling_Micro_release v1.xlsx"
FOURD_COLUMNS = ["sub_ID", "fold_name", "Emotion", "Onset", "Apex", "Offset", "AUs"]


def generate_casme2(out_dir: Path, *, seed: int, subjects: int, clips_per_subject: int, frames_min: int,
                    frames_max: int, width: int, height: int, face_width_px: int, amplitude_px: float,
                    noise_sigma: float, head_jitter_px: float, jpeg_quality: int) -> None:
    """Write a synthetic CASME II tree at `out_dir` (atomically: built beside it, then renamed)."""
    out_dir = Path(out_dir)
    check_synth_params(subjects=subjects, clips_per_subject=clips_per_subject, frames_min=frames_min,
                       frames_max=frames_max, amplitude_px=amplitude_px, noise_sigma=noise_sigma,
                       head_jitter_px=head_jitter_px)
    plans = plan_clips(seed=seed, subjects=subjects, clips_per_subject=clips_per_subject,
                       frames_min=frames_min, frames_max=frames_max, emotion_groups=CASME2_GROUPS)
    synth = dict(seed=seed, subjects=subjects, width=width, height=height, face_width_px=face_width_px,
                 amplitude_px=amplitude_px, noise_sigma=noise_sigma, head_jitter_px=head_jitter_px,
                 jpeg_quality=jpeg_quality)

    def frame_dir(tree: Path, plan: ClipPlan) -> tuple[Path, str]:
        subject = f"sub{plan.subject:02d}"
        return tree / CASME2_FRAMES_DIR / subject / plan.filename, subject

    build_tree(out_dir, "CASME II", plans, synth, frame_dir=frame_dir,
               frame_name=lambda plan: lambda n: f"img{n}.jpg",
               write_sheets=lambda tree, plans: write_casme2_sheet(tree / CASME2_SHEET, plans),
               clip_id=lambda plan: plan.clip_id)


def write_casme2_sheet(path: Path, plans: list[ClipPlan]) -> None:
    """The coding sheet with CASME II's columns; Subject as zero-padded text ('01'), as in some
    copies of the real sheet (others store the number)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Sheet1"
    sheet.append(CASME2_COLUMNS)
    for plan in plans:
        sheet.append([f"{plan.subject:02d}", plan.filename, plan.onset, plan.apex, plan.offset,
                      EXPRESSIONS[plan.emotion][0], plan.emotion])
    buffer = io.BytesIO()
    workbook.save(buffer)
    write_reproducible_zip(path, buffer.getvalue())


def generate_casme(out_dir: Path, **synth) -> None:
    def frame_dir(tree: Path, plan: ClipPlan) -> tuple[Path, str]:
        _, folder, frames_folder = section_of(plan.subject, synth["subjects"])
        return tree / folder / frames_folder / f"sub{plan.subject:02d}" / plan.filename, f"sub{plan.subject:02d}"

    def frame_name(plan: ClipPlan):
        padded = section_of(plan.subject, synth["subjects"])[0] == "B"
        return lambda n: f"{plan.filename}-{n:03d}.jpg" if padded else f"{plan.filename}-{n}.jpg"

    def sheets(tree: Path, plans: list[ClipPlan]) -> None:
        for section, folder, _ in CASME_SECTIONS:
            rows = [p for p in plans if section_of(p.subject, synth["subjects"])[0] == section]
            if rows:
                write_casme_sheet(tree / folder / f"{folder}-coding-synthetic.xls", rows)

    plans = [dataclasses.replace(p, filename=f"{p.filename[:4]}_{p.clip + 1}")       # EP07_1, as CASME's
             for p in planned(synth, CASME_GROUPS)]
    build_tree(out_dir, "CASME", plans, synth, frame_dir=frame_dir, frame_name=frame_name, write_sheets=sheets,
               clip_id=lambda p: f"sub{p.subject:02d}_{p.filename}")


def section_of(subject: int, subjects: int) -> tuple[str, str, str]:
    """(section, folder, frames folder) of a 1-based subject: the first ~7/19 in A, the rest in B
    (both sections present as soon as there are two subjects)."""
    in_a = max(1, round(subjects * CASME_SECTION_A_SHARE))
    if subjects > 1:
        in_a = min(in_a, subjects - 1)
    return CASME_SECTIONS[0] if subject <= in_a else CASME_SECTIONS[1]


def write_casme_sheet(path: Path, plans: list[ClipPlan]) -> None:
    """A legacy-Excel coding sheet with CASME's columns; ApexF2 (a second apex, rarely coded) is blank."""
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Sheet1")
    for column, name in enumerate(CASME_COLUMNS):
        sheet.write(0, column, name)
    for row, plan in enumerate(plans, start=1):
        duration_ms = round((plan.offset - plan.onset + 1) * 1000 / 60)
        values = [plan.subject, plan.filename, plan.onset, plan.apex, "", plan.offset, duration_ms,
                  action_units(plan), plan.emotion]
        for column, value in enumerate(values):
            sheet.write(row, column, value)
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.write_bytes(buffer.getvalue())


def generate_smic(out_dir: Path, **synth) -> None:
    plans = planned(synth, SMIC_GROUPS)
    counts: dict[tuple[int, str], int] = {}
    renamed = []
    for plan in plans:
        counts[plan.subject, plan.emotion] = counts.get((plan.subject, plan.emotion), 0) + 1
        # SMIC numbers frames by the camera's running counter: six digits, far from 1.
        shift = 100_000 + 1_000 * plan.onset
        renamed.append(shifted(
            plan, f"s{plan.subject}_{SMIC_CODES[plan.emotion]}_{counts[plan.subject, plan.emotion]:02d}", shift))
    build_tree(out_dir, "SMIC", renamed, synth,
               frame_dir=lambda tree, p: (tree / "HS" / f"s{p.subject}" / "micro" / p.emotion / p.filename,
                                          f"s{p.subject}"),
               frame_name=lambda p: lambda n: f"image{n:06d}.bmp", write_sheets=lambda tree, plans: None,
               clip_id=lambda p: p.filename)


def generate_samm(out_dir: Path, **synth) -> None:
    plans = planned(synth, SAMM_GROUPS)
    counts: dict[tuple[int, int], int] = {}
    renamed = []
    for plan in plans:
        subject = SAMM_FIRST_SUBJECT + plan.subject - 1
        inducement = plan.clip % 7 + 1
        counts[subject, inducement] = counts.get((subject, inducement), 0) + 1
        shift = 1_000 + 9 * plan.onset              # SAMM's frame numbers run into the thousands
        renamed.append(shifted(plan, f"{subject:03d}_{inducement}_{counts[subject, inducement]}", shift))

    def folder(tree: Path, plan: ClipPlan) -> tuple[Path, str]:
        subject = f"{SAMM_FIRST_SUBJECT + plan.subject - 1:03d}"
        return tree / "SAMM" / subject / plan.filename, subject

    build_tree(out_dir, "SAMM", renamed, synth, frame_dir=folder,
               frame_name=lambda p: lambda n, s=p.filename[:3]: f"{s}_{n:05d}.jpg",
               write_sheets=lambda tree, plans: write_samm_sheet(tree / SAMM_SHEET, plans),
               clip_id=lambda p: p.filename, grey=True)


def write_samm_sheet(path: Path, plans: list[ClipPlan]) -> None:
    """SAMM's coding sheet: a preamble of 13 rows, then the header row and one row per movement."""
    write_xlsx(path, "FACS_Movement_Only", SAMM_COLUMNS,
               [[SAMM_FIRST_SUBJECT + plan.subject - 1, plan.filename, int(plan.filename.split("_")[1]),
                 plan.onset, plan.apex, plan.offset, plan.offset - plan.onset + 1, "Micro - 1/2",
                 action_units(plan), None, plan.emotion] for plan in plans],
               preamble=SAMM_PREAMBLE)


def generate_casme3a(out_dir: Path, **synth) -> None:
    plans = []
    for plan in planned(synth, CASME3_GROUPS):
        task = CASME3_TASKS[plan.clip // CASME3_CLIPS_PER_TASK % len(CASME3_TASKS)]
        plans.append(shifted(plan, task, CASME3_TASK_SPAN * (plan.clip % CASME3_CLIPS_PER_TASK)))

    def sheets(tree: Path, plans: list[ClipPlan]) -> None:
        write_xlsx(tree / CASME3_SHEET, "label", CASME3_COLUMNS,
                   [[f"spNO.{p.subject}", p.filename, p.onset, p.apex, p.offset, action_units(p), p.emotion]
                    for p in plans])

    build_tree(out_dir, "CAS(ME)3 Part A", plans, synth,
               frame_dir=lambda tree, p: (tree / "data" / "ME_A" / f"spNO.{p.subject}" / p.filename / "color",
                                          f"spNO.{p.subject}"),
               frame_name=lambda p: lambda n: f"{n}.jpg", write_sheets=sheets,
               clip_id=lambda p: f"spNO.{p.subject}_{p.filename}_{p.onset}")


def generate_mmew(out_dir: Path, **synth) -> None:
    counts: dict[tuple[int, str], int] = {}
    plans = []
    for plan in planned(synth, MMEW_GROUPS):
        key = plan.subject, plan.emotion
        counts[key] = counts.get(key, 0) + 1
        name = f"S{plan.subject:02d}-{MMEW_EMOTIONS.index(plan.emotion) + 1:02d}-{counts[key]:03d}"
        plans.append(shifted(plan, name, 1 - plan.onset))          # MMEW numbers each clip's frames from 1

    def sheets(tree: Path, plans: list[ClipPlan]) -> None:
        write_xlsx(tree / MMEW_SHEET, "Sheet1", MMEW_COLUMNS,
                   [[p.subject, p.filename, p.onset, p.apex, p.offset, None, action_units(p), p.emotion]
                    for p in plans])

    build_tree(out_dir, "MMEW", plans, synth,
               frame_dir=lambda tree, p: (tree / "Micro_Expression" / p.emotion / p.filename, f"S{p.subject:02d}"),
               frame_name=lambda p: lambda n: f"{n}.jpg", write_sheets=sheets, clip_id=lambda p: p.filename)


def generate_fourdme(out_dir: Path, **synth) -> None:
    plans = [shifted(plan, f"S{plan.subject:02d}_1st_{plan.clip + 1:03d}_01_1", 2_000 + 10 * plan.onset)
             for plan in planned(synth, FOURD_GROUPS)]

    def sheets(tree: Path, plans: list[ClipPlan]) -> None:
        write_xlsx(tree / FOURD_SHEET, "Sheet1", FOURD_COLUMNS,
                   [[f"S{p.subject:02d}", p.filename, p.emotion, p.onset, p.apex, p.offset, action_units(p)]
                    for p in plans])

    build_tree(out_dir, "4DME", plans, synth,
               frame_dir=lambda tree, p: (tree / "gray_micro" / f"S{p.subject:02d}" / p.filename, f"S{p.subject:02d}"),
               frame_name=lambda p: lambda n: f"{p.filename}_{n:05d}.jpg", write_sheets=sheets,
               clip_id=lambda p: p.filename, grey=True)


# --- every layout ---------------------------------------------------------------------------------

WRITERS: dict[str, Callable[..., None]] = {   # layout (a key of layouts.LAYOUTS) -> writer(out_dir, **synth)
    "casme2": generate_casme2,
    "casme": generate_casme,
    "smic": generate_smic,
    "samm": generate_samm,
    "casme3a": generate_casme3a,
    "mmew": generate_mmew,
    "4dme": generate_fourdme,
}


def generate_synthetic(layout: str, out_dir: Path, **synth: float | int) -> None:
    """Write a synthetic tree of `layout` at `out_dir`; `synth` is the synth section of params.yaml."""
    layout_entry(layout, "synth --layout")     # a known layout, or an error naming them
    WRITERS[layout](Path(out_dir), **synth)
