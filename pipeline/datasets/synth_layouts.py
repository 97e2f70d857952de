"""Synthetic trees in the layouts of CASME, SMIC and SAMM (CASME II's is pipeline/datasets/synth.py).

The same subjects, motion and noise as the synthetic CASME II (synth.py: real face photos moved by
landmark-driven micro-expressions); what differs is what each dataset's owners ship:

    casme  CASME_A/CASME_A-coding-synthetic.xls + CASME_A/Section A/sub01/EP07_1/EP07_1-46.jpg
           CASME_B/CASME_B-coding-synthetic.xls + CASME_B/Section B/sub02/EP03_2/EP03_2-046.jpg
           (.xls sheets written with xlwt; Section B zero-pads frame numbers to 3 digits; subjects are
           split between the sections, numbered on from A into B)
    smic   HS/s1/micro/{positive,negative,surprise}/s1_po_01/image146321.bmp (no sheet: the class is
           the folder; 3 classes)
    samm   SAMM_Micro_FACS_Codes_v2.xlsx (13 preamble rows above the header) + SAMM/006/006_1_2/006_01046.jpg
           (grey frames, 5-digit frame numbers, subjects from 006)

Each tree also has synth_truth.csv (the motion commanded per clip) and SOURCES.txt. `generate_synthetic`
writes any layout, atomically (built beside `out_dir`, then renamed).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import openpyxl
import xlwt

from pipeline.datasets.synth import (
    EXPRESSIONS,
    ClipPlan,
    build_tree,
    check_synth_params,
    motion_of,
    plan_clips,
    write_reproducible_zip,
)

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


def generate_synthetic(layout: str, out_dir: Path, **synth: float | int) -> None:
    """Write a synthetic tree of `layout` at `out_dir`; `synth` is the synth section of params.yaml."""
    from pipeline.datasets.layouts import layout as layout_entry
    from pipeline.datasets.synth import generate_casme2
    from pipeline.datasets.synth_more import generate_casme3a, generate_fourdme, generate_mmew
    layout_entry(layout, "synth --layout")     # a known layout, or an error naming them
    generators = {"casme2": generate_casme2, "casme": generate_casme, "smic": generate_smic, "samm": generate_samm,
                  "casme3a": generate_casme3a, "mmew": generate_mmew, "4dme": generate_fourdme}
    generators[layout](Path(out_dir), **synth)


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


# --- shared scaffolding ---------------------------------------------------------------------------

def planned(synth: dict, groups: dict[str, list[str]]) -> list[ClipPlan]:
    check_synth_params(**{key: synth[key] for key in ("subjects", "clips_per_subject", "frames_min", "frames_max",
                                                      "amplitude_px", "noise_sigma", "head_jitter_px")})
    return plan_clips(seed=synth["seed"], subjects=synth["subjects"], clips_per_subject=synth["clips_per_subject"],
                      frames_min=synth["frames_min"], frames_max=synth["frames_max"], emotion_groups=groups)


def shifted(plan: ClipPlan, filename: str, shift: int) -> ClipPlan:
    """The plan renamed, its onset, apex and offset moved by `shift` frames (a layout's frame numbering)."""
    return dataclasses.replace(plan, filename=filename, onset=plan.onset + shift, apex=plan.apex + shift,
                               offset=plan.offset + shift)


def action_units(plan: ClipPlan) -> str:
    """The FACS code of the motion the plan's emotion is drawn with, as a sheet's AU column holds it."""
    return EXPRESSIONS[motion_of(plan.emotion)][0]


def write_xlsx(path: Path, title: str, header: list[str], rows: list[list], preamble: list[str] = ()) -> None:
    """One worksheet: the preamble lines, the header row, the rows; byte-reproducible (fixed zip times)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for line in preamble:
        sheet.append([line or None])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_reproducible_zip(path, buffer.getvalue())
