"""MEGC 2019's composite from real clip lists: composite_index with MEGC's per-source mappings and
exclusions selects its 442 clips (SMIC-HS 164, CASME II 145, SAMM 133; 68 subjects) clip by clip.

The clip lists: CASME II's 256 clips of its 2014-05-08 sheet (tests/data/casme2_real_clips.csv, with
their emotions), and SMIC-HS's and SAMM's clips as the composite's public list names them
(tests/data/megc2019_composite.csv). Every SMIC-HS clip is in the composite, with its class folder as
its emotion. SAMM's list gives the 3 classes only, not the 5 emotions its negatives come from, so
its negative clips get anger, contempt, disgust, fear and sadness in turn (real ids and subjects,
assigned emotions); the CASME II rows are real throughout.

CASME II's sub09 EP09f (happiness) is in the owners' frame folders and in bob.db.casme2's index but
not in the 2014-05-08 sheet: a copy read from the sheet gives 144 clips (31 positive); the test adds
the clip to reach MEGC's 145 and checks both.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.composite import MEGC2019_CLASSES, MEGC2019_EMOTIONS, composite_index, megc2019_exclusions
from pipeline.errors import MerflowError

DATA = Path(__file__).parent / "data"
SAMM_NEGATIVE = ["anger", "contempt", "disgust", "fear", "sadness"]
FOLDER_ONLY = {"clip_id": "sub09_EP09f", "subject": "sub09", "emotion": "happiness"}    # no 2014-05-08 row

# MEGC 2019: clips and subjects per source, clips per class
EXPECTED = {"smic": (164, {"negative": 70, "positive": 51, "surprise": 43}, 16),
            "casme2": (145, {"negative": 88, "positive": 32, "surprise": 25}, 24),
            "samm": (133, {"negative": 92, "positive": 26, "surprise": 15}, 28)}


@pytest.fixture(scope="module")
def megc() -> pd.DataFrame:
    return pd.read_csv(DATA / "megc2019_composite.csv", comment="#", dtype=str)


def casme2_sheet() -> pd.DataFrame:
    sheet = pd.read_csv(DATA / "casme2_real_clips.csv", dtype=str)
    return pd.DataFrame({"clip_id": sheet["subject"] + "_" + sheet["folder"], "subject": sheet["subject"],
                         "emotion": sheet["emotion"]})


def listed_source(megc: pd.DataFrame, dataset: str) -> pd.DataFrame:
    rows = megc[megc["dataset"] == dataset].reset_index(drop=True)
    emotion = rows["label"].copy()
    if dataset == "samm":
        emotion = emotion.replace({"positive": "happiness"})
        negative = emotion == "negative"
        emotion[negative] = [SAMM_NEGATIVE[i % 5] for i in range(int(negative.sum()))]
    return pd.DataFrame({"clip_id": rows["clip"], "subject": rows["subject"], "emotion": emotion})


def megc_composite(indexes: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return composite_index(indexes, {}, MEGC2019_CLASSES, emotions_by_source=MEGC2019_EMOTIONS,
                           exclude=megc2019_exclusions())


def test_the_real_clip_lists_give_megc_2019s_composite_clip_by_clip(megc):
    casme2 = pd.concat([casme2_sheet(), pd.DataFrame([FOLDER_ONLY])], ignore_index=True)
    index, excluded = megc_composite({"smic": listed_source(megc, "smic"), "casme2": casme2,
                                      "samm": listed_source(megc, "samm")})
    for source, (clips, classes, subjects) in EXPECTED.items():
        rows = index[index["source"] == source]
        assert len(rows) == clips and rows["subject"].nunique() == subjects, source
        assert rows["label"].value_counts().to_dict() == classes, source
    assert len(index) == 442 and index["subject"].nunique() == 68
    assert index["label"].value_counts().to_dict() == {"negative": 250, "positive": 109, "surprise": 83}

    selected = set(zip(index["source"], index["original_clip_id"], index["subject"].str.split("-", n=1).str[1],
                       index["label"], strict=True))
    assert selected == set(zip(megc["dataset"], megc["clip"], megc["subject"], megc["label"], strict=True))

    casme2_out = excluded[excluded["source"] == "casme2"]
    assert casme2_out["emotion"].value_counts().to_dict() == {"others": 99, "sadness": 7, "disgust": 3,
                                                              "fear": 2, "happiness": 1}
    by_name = casme2_out[casme2_out["reason"].str.startswith("excluded by MEGC 2019's list")]
    assert sorted(by_name["clip_id"]) == ["casme2-sub04_EP12_01f", "casme2-sub05_EP09_05f",
                                          "casme2-sub09_EP02_02f", "casme2-sub24_EP02_07"]
    assert excluded[excluded["source"] != "casme2"].empty


def test_casme2_from_its_2014_05_08_sheet_lacks_one_positive(megc):
    index, _ = megc_composite({"casme2": casme2_sheet(), "smic": listed_source(megc, "smic")})
    casme2 = index[index["source"] == "casme2"]
    assert len(casme2) == 144 and casme2["subject"].nunique() == 24
    assert casme2["label"].value_counts().to_dict() == {"negative": 88, "positive": 31, "surprise": 25}
    listed = set(megc.loc[megc["dataset"] == "casme2", "clip"])
    assert listed - set(casme2["original_clip_id"]) == {"sub09_EP09f"}


def test_an_exclusion_naming_no_clip_of_the_source_is_an_error(megc):
    indexes = {"casme2": casme2_sheet(), "smic": listed_source(megc, "smic")}
    with pytest.raises(MerflowError, match=r"not in its index: \['sub99_EP01'\]"):
        composite_index(indexes, {}, MEGC2019_CLASSES, emotions_by_source=MEGC2019_EMOTIONS,
                        exclude={"casme2": {"sub99_EP01"}})
