"""Derive casme2_real_clips.csv from the CASME II index that PyPI's bob.db.casme2 2.0.5 ships.

    pip download --no-deps --no-clean bob.db.casme2==2.0.5 -d /tmp/bob   # its build fails; the
    python tests/data/derive_casme2_real_clips.py /tmp/pip-download-*/bob-db-casme2_*/bob/db/casme2/db.sql3

bob's index was built from the owners' frame folders and an earlier coding sheet. The CSV holds the
2014-05-08 sheet's view of each clip, reconstructed from it:
- sub09 EP09f is left out: it has frame folders (bob indexes them) but no row in the 2014-05-08 sheet;
- sub24 EP02_07 is disgust in the 2014-05-08 sheet (sadness in bob's index);
- onset and offset are the clip's first and last frame file (the sheet agrees with the folders, which
  tvaranka/meb's loaders check), except sub07 EP06_01, whose sheet OffsetFrame is 68 (last file 91);
- apex is '/' for the 21 rows that the 2014-05-08 sheet leaves without apex (the rows meb's loader
  fills in) and for the two that bob's index has no apex for (sub09 EP02_02f, sub24 EP02_07); else bob's.
first_frame/last_frame are the real numbering of the clip's frame files (reg_img<N>.jpg).
"""

from __future__ import annotations

import csv
import sqlite3
import sys
from pathlib import Path

LEFT_OUT = {("sub09", "EP09f")}
EMOTION = {("sub24", "EP02_07"): "disgust"}
OFFSET = {("sub07", "EP06_01"): 68}
NO_APEX = {("sub04", "EP12_01f"), ("sub05", "EP03_01"), ("sub05", "EP07_01"), ("sub05", "EP09_05f"),
           ("sub05", "EP16_04f"), ("sub06", "EP01_01"), ("sub07", "EP06_01"), ("sub12", "EP09_02"),
           ("sub12", "EP09_06"), ("sub13", "EP09_10"), ("sub16", "EP01_08"), ("sub17", "EP03_09"),
           ("sub17", "EP06_07"), ("sub17", "EP13_09"), ("sub17", "EP15_03"), ("sub18", "EP19_01"),
           ("sub20", "EP16_01"), ("sub20", "EP16_04"), ("sub25", "EP09_02"), ("sub25", "EP12_01"),
           ("sub25", "EP18_04f")}
COLUMNS = ["subject", "folder", "emotion", "onset", "apex", "offset", "first_frame", "last_frame"]


def derive(db: Path, out: Path) -> int:
    query = ("select f.path, f.emotion, f.apex, min(fr.frame_no), max(fr.frame_no), count(fr.id) "
             "from file f join frame fr on fr.file_id = f.id group by f.id")
    rows = []
    for path, emotion, apex, first, last, count in sqlite3.connect(db).execute(query):
        subject, folder = path.split("/")[-2:]
        key = (subject, folder)
        if key in LEFT_OUT:
            continue
        assert count == last - first + 1, key          # every clip's numbering is contiguous
        no_apex = key in NO_APEX or apex < 0
        assert no_apex or first <= apex <= last, key
        rows.append({"subject": subject, "folder": folder, "emotion": EMOTION.get(key, emotion),
                     "onset": first, "apex": "/" if no_apex else apex, "offset": OFFSET.get(key, last),
                     "first_frame": first, "last_frame": last})
    rows.sort(key=lambda r: (r["subject"], r["folder"]))
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


if __name__ == "__main__":
    print(derive(Path(sys.argv[1]), Path(__file__).with_name("casme2_real_clips.csv")), "clips")
