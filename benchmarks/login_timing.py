"""Login answer time for a known and an unknown email (issue 15, item 4).

An unknown email used to skip the password hash and answer ~100x faster, which
told an attacker which emails have an account. Both now check a hash of the same
cost. Measured in one run, interleaved, through the app (SQLite, in process),
beside the plain reference: one ``check_password_hash`` of the same hash.

Run: ``.venv/bin/python benchmarks/login_timing.py [--rounds 40] [--no-report]``
(``--no-report`` prints the figures, leaves docs/benchmarks.md alone).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import write_section  # noqa: E402


def measure(rounds: int) -> dict[str, list[float]]:
    from werkzeug.security import check_password_hash

    from meiqia.models import Agent
    from tests.conftest import close_app
    from tests.conftest import make_app
    from tests.helpers import ApiClient

    app = make_app(Path(tempfile.mkdtemp()), LOGIN_RATE_PER_CLIENT="100000/minute",
                   LOGIN_MAX_FAILURES=0)
    times: dict[str, list[float]] = {"known email": [], "unknown email": [],
                                     "reference: one check_password_hash": []}
    try:
        with app.app_context():
            ApiClient.registered(app)
            stored = Agent.get().password_hash
            client = app.test_client()
            for i in range(rounds):
                for name, email in (("known email", "admin@example.com"),
                                    ("unknown email", "nobody@example.com")):
                    started = time.perf_counter()
                    response = client.post("/api/v1/auth/login", json={
                        "email": email, "password": "wrong-pass-1"})
                    times[name].append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 401
                started = time.perf_counter()
                check_password_hash(stored, f"wrong-{i}")
                times["reference: one check_password_hash"].append(
                    (time.perf_counter() - started) * 1000)
    finally:
        close_app(app)
    return times


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--no-report", action="store_true",
                        help="print the figures, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    times = measure(args.rounds)
    lines = ["| wrong password for | p50 ms | p90 ms |", "|---|---|---|"]
    for name, values in times.items():
        values.sort()
        lines.append(f"| {name} | {statistics.median(values):.1f} | "
                     f"{values[int(len(values) * 0.9) - 1]:.1f} |")
    ratio = statistics.median(times["unknown email"]) / statistics.median(times["known email"])
    lines += ["", f"Unknown / known median: {ratio:.2f} (before the fix: about 0.01)."]
    body = "\n".join(lines)
    print(body)
    if not args.no_report:
        write_section("login-timing", "Login timing: known and unknown emails",
                      "benchmarks/login_timing.py", body)


if __name__ == "__main__":
    main()
