"""The plugin runtime: how meiqia calls code it did not write (DESIGN §7).

``meiqia.plugins`` finds and loads plugins; this package decides how each call
runs, so no service (and no built-in plugin) ever calls a plugin on its own:

* ``budgets``: which hooks are notifications (run off the request path), which
  are privacy hooks (fail closed), and each hook kind's time budget;
* ``pools``: a small, bounded pool of threads per plugin and hook, so a plugin
  that hangs uses up its own threads and nobody else's;
* ``runtime``: one call of one implementation: budget, errors that name the
  plugin and the hook, latency, the circuit breaker;
* ``state``: the admins' switches and the breaker, kept in the database
  (``plugin_state``) so every process sees them;
* ``privacy``: what happens to a message when a privacy hook could not look at it.

docs/plugins.md ("How plugins are run") is the contract for plugin authors.
"""

from meiqia.plugin_runtime.budgets import NOTIFICATIONS
from meiqia.plugin_runtime.budgets import PRIVACY_HOOKS
from meiqia.plugin_runtime.runtime import Failure
from meiqia.plugin_runtime.runtime import HookCall
from meiqia.plugin_runtime.runtime import PluginRuntime

__all__ = ["NOTIFICATIONS", "PRIVACY_HOOKS", "Failure", "HookCall", "PluginRuntime"]
