"""Running a stage from a Snakemake script: output to the rule's log, user errors shown plainly."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from pipeline.errors import MerflowError


def run_logged(log_path: str | os.PathLike, stage: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Call `stage(*args, **kwargs)` with stdout/stderr going to `log_path`.

    A MerflowError (bad input, bad params) is written to the log and to the console as one clear
    message, and the process exits 1; anything else is a bug and keeps its traceback.
    """
    console = sys.__stderr__
    os.makedirs(os.path.dirname(os.fspath(log_path)) or ".", exist_ok=True)
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            stage(*args, **kwargs)
        except MerflowError as error:
            print(f"merflow error: {error}", file=log)
            print(f"merflow error: {error}\n(log: {log_path})", file=console)
            raise SystemExit(1) from None
        except Exception:
            traceback.print_exc(file=log)
            raise
