"""Errors a user can act on. The CLI and the stage scripts print them without a traceback."""

from __future__ import annotations

import os


class MerflowError(Exception):
    """Base class: the message says what is wrong and where."""


class BadInputError(MerflowError):
    """A clip's input is unusable; the message names the clip, the file and the reason."""

    def __init__(self, clip_id: str, path: str | os.PathLike | None, reason: str):
        self.clip_id = clip_id
        self.path = os.fspath(path) if path is not None else None
        self.reason = reason
        where = f" ({self.path})" if self.path else ""
        super().__init__(f"clip {clip_id}{where}: {reason}")


class DatasetError(MerflowError):
    """Several problems in a dataset, reported all at once (one line each)."""

    def __init__(self, dataset: str, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"dataset {dataset}: {len(problems)} problem(s):\n{listing}")


class ParamsError(MerflowError):
    """params.yaml does not match its schema."""
