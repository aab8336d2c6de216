"""Test helpers, now in ``meiqia.testing.api`` (plugin authors use them too);
re-exported here for the suite's existing imports."""

from typing import Any

from meiqia.testing.api import ADMIN_PASSWORD
from meiqia.testing.api import AGENT_PASSWORD
from meiqia.testing.api import ApiClient
from meiqia.testing.api import new_client_id
from meiqia.testing.api import wait_until

__all__ = ["ADMIN_PASSWORD", "AGENT_PASSWORD", "ApiClient", "new_client_id", "wait_until"]


def run_coroutine(make: Any) -> Any:
    """``asyncio.run(make())`` in a thread of its own, and its result (or error).

    A pytest-xdist worker that ran a browser test first has playwright's event
    loop running in its main thread, where ``asyncio.run`` refuses to start
    ("cannot be called from a running event loop"): the asyncio clients of the
    socket tests passed alone and failed in the full suite."""
    import asyncio
    import threading

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="asyncio-client")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
