"""Synthetic trees in the layouts of CAS(ME)3 Part A, MMEW and 4DME (see synth_layouts.py for CASME,
SMIC and SAMM): the same subjects and motion, named and numbered as each dataset's owners do.

    casme3a  annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx (worksheet "label") +
             data/ME_A/spNO.1/a/color/355.jpg (two clips per task video, frame ranges apart)
    mmew     MMEW_Micro_Exp.xlsx + Micro_Expression/happiness/S01-01-001/1.jpg (frames from 1 in each clip)
    4dme     4DME_Labelling_Micro_release v1.xlsx + gray_micro/S01/S01_1st_001_01_1/S01_1st_001_01_1_02046.jpg
             (grey frames, numbered in the thousands as in the recordings)
"""

from __future__ import annotations

from pathlib import Path

from pipeline.datasets.synth import ClipPlan, build_tree
from pipeline.datasets.synth_layouts import action_units, planned, shifted, write_xlsx

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
