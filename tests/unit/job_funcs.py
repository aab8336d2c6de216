"""Module-level job functions for the job-queue tests (jobs take ids and values)."""

from __future__ import annotations

from meiqia import jobs
from meiqia.models import Team

ATTEMPTS: dict[str, int] = {}


def rename_team(team_id: int, name: str) -> dict:
    for step in range(1, 5):
        jobs.report_progress(step / 4, f"第 {step} 步")
    Team.update(name=name).where(Team.id == team_id).execute()
    return {"renamed": team_id}


def flaky(key: str, fail_times: int) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] <= fail_times:
        raise RuntimeError(f"attempt {ATTEMPTS[key]} failed")
    return "ok"
