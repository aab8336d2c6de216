"""Job functions the reliability tests run on real rq worker processes."""

from __future__ import annotations

import os
import time

from meiqia import jobs


def block_until(path: str, limit: float = 60.0) -> str:
    """A long job: works (and beats) until ``path`` exists, as a slow export would."""
    deadline = time.monotonic() + limit
    jobs.report_progress(0.1, "waiting for the gate")
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)
    return "through"


def count_run(path: str) -> str:
    """A job with an effect to count: one line in ``path`` per run."""
    with open(path, "a") as fh:
        fh.write("ran\n")
    return "counted"


def broken(what: str) -> None:
    """A job with a bug: its failure is no expected one (not ``jobs.RetryLater``)."""
    raise KeyError(what)
