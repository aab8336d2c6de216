"""Test helpers, now in ``meiqia.testing.api`` (plugin authors use them too);
re-exported here for the suite's existing imports."""

from meiqia.testing.api import ADMIN_PASSWORD
from meiqia.testing.api import AGENT_PASSWORD
from meiqia.testing.api import ApiClient
from meiqia.testing.api import new_client_id
from meiqia.testing.api import wait_until

__all__ = ["ADMIN_PASSWORD", "AGENT_PASSWORD", "ApiClient", "new_client_id", "wait_until"]
