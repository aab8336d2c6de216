"""The plugin manager: built-ins, entry points, ``instance/plugins/*.py``.

Built-in plugins use the same hooks as everyone else (DESIGN §7); overridable
defaults are ``@hookimpl(trylast=True)``. A plugin that fails to load stops
start-up naming it; one whose ``startup`` raises is disabled (``start_plugins``);
a hook that fails at run time is logged with the plugin's name and skipped,
under the rules of ``meiqia.plugin_runtime``, so one bad plugin never breaks a
conversation. ``DISABLED_PLUGINS`` keeps any plugin from loading, whatever its
source.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pluggy

from meiqia import hookspecs
from meiqia.plugin_api import hook_arguments
from meiqia.plugin_runtime import HookCall
from meiqia.plugin_runtime import PluginRuntime
from meiqia.plugin_runtime.budgets import LIFECYCLE
from meiqia.plugin_runtime.budgets import NOTIFICATIONS
from meiqia.plugin_runtime.runtime import team_of

log = logging.getLogger(__name__)


def _builtin_plugins() -> list[str]:
    import pkgutil

    return sorted(
        f"{__name__}.{info.name}"
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    )


#: Built-in plugins: every module of this package, by module path.
#: ``DISABLED_PLUGINS`` names them by their last part (e.g. ``email_sink``).
DEFAULT_PLUGINS = _builtin_plugins()

#: Entry-point group of third-party plugins.
ENTRY_POINT_GROUP = "meiqia"


class PluginLoadError(RuntimeError):
    """A plugin could not be loaded; the message names it."""

    def __init__(self, name: str, cause: BaseException, where: str = "") -> None:
        at = f" ({where})" if where else ""
        super().__init__(
            f"plugin {name!r}{at} failed to load: {type(cause).__name__}: {cause}")
        self.plugin_name = name


class PluginManager(pluggy.PluginManager):
    """pluggy's manager whose run-time calls go through the plugin runtime.

    ``call``, ``call_first`` and ``call_flat`` never raise what a plugin raised
    and never wait past a hook's budget (``meiqia.plugin_runtime``);
    notifications (``track_event``) return at once. Lifecycle hooks (start-up)
    run on the calling thread, as pluggy calls them.
    """

    def __init__(self, project_name: str, runtime: PluginRuntime | None = None) -> None:
        super().__init__(project_name)
        self.runtime = runtime or PluginRuntime()
        #: id of an object a plugin returned (answerer, sink class) -> its plugin.
        self._owners: dict[int, str] = {}
        #: plugin name -> why its ``startup`` failed (it was unregistered).
        self.failed_at_startup: dict[str, dict[str, str]] = {}

    @property
    def hook_timeout(self) -> float:
        """The ceiling of every hook's budget (``HOOK_TIMEOUT``)."""
        return self.runtime.settings.ceiling

    def plugin_name(self, plugin: Any) -> str:
        return self.get_name(plugin) or repr(plugin)

    def has_custom(self, hook_name: str) -> bool:
        """Whether a plugin other than the built-ins implements ``hook_name``."""
        return any(getattr(impl.plugin, "__meiqia_origin__", "plugin") != "built-in"
                   for impl in getattr(self.hook, hook_name).get_hookimpls())

    def owner_of(self, obj: Any) -> str | None:
        """The plugin that returned ``obj`` from a ``register_*`` hook."""
        return self._owners.get(id(obj))

    def set_owner(self, obj: Any, plugin: str) -> None:
        """Record that ``obj`` (an answerer, a sink class) belongs to ``plugin``,
        for an object made in its stead (``services.bot.answerers_with_index``)."""
        self._owners[id(obj)] = plugin

    def call(self, hook_name: str, timeout: float | None = None, **kwargs: Any) -> list:
        """Call every implementation of ``hook_name``; return their non-None results.

        A failing implementation (raised, past its budget, suspended, turned
        off) is logged with its plugin's name and skipped. ``timeout`` overrides
        the hook's budget. Notifications return ``[]`` at once.
        """
        return self.call_detailed(hook_name, timeout=timeout, **kwargs).results

    def call_first(self, hook_name: str, timeout: float | None = None,
                   check: Callable[[Any], str | None] | None = None, **kwargs: Any) -> Any:
        """Like ``call`` for firstresult hooks: the first non-None result, or None.
        ``check`` is the runtime's: an answer it finds unusable is a failure of its
        plugin (counted, logged, held against the breaker) and the next
        implementation is asked."""
        return self.call_first_named(hook_name, timeout, check, **kwargs)[1]

    def call_first_named(self, hook_name: str, timeout: float | None = None,
                         check: Callable[[Any], str | None] | None = None,
                         **kwargs: Any) -> tuple[str | None, Any]:
        """``call_first`` with the name of the plugin that answered: ``(name,
        result)``, or ``(None, None)`` (a request's actor says who vouched for it)."""
        done = self._call(hook_name, kwargs, timeout, first=True, check=check)
        return done.results[0] if done.results else (None, None)

    def call_flat(self, hook_name: str,
                  sift: Callable[[Any, list[Any]], str | None] | None = None,
                  **kwargs: Any) -> list:
        """``call`` for hooks returning lists: one flat list of all items.

        ``sift(result, usable)`` (run-time hooks whose items are checked, such as
        ``sidebar_panels`` and ``menu_links``) appends an implementation's usable
        items to ``usable`` and says what is wrong with the rest (not a list, item
        2 without a URL), or None. Such an answer is a failure of its plugin for
        the runtime (kind ``malformed``: logged, counted, on the Plugins page and
        ``/healthz``, held against the breaker) and only its usable items are kept."""
        items: list = []
        for name, result in self._call(hook_name, kwargs, None, first=False,
                                       sift=sift).results:
            if result is None:  # "a list (or None)": a lifecycle hook's None is nothing
                continue
            for item in result if isinstance(result, list | tuple) else [result]:
                self._owners[id(item)] = name
                items.append(item)
        return items

    def call_detailed(self, hook_name: str, timeout: float | None = None,
                      first: bool = False, **kwargs: Any) -> HookCall:
        """Results and failures of one hook call (privacy hooks need both)."""
        done = self._call(hook_name, kwargs, timeout, first)
        return HookCall([result for _name, result in done.results], done.failures)

    def in_turn_order(self, hook_name: str) -> list[Any]:
        """The implementations of ``hook_name`` in the order ``call_in_turn`` runs
        them: ``tryfirst`` ones, then the others, then ``trylast`` ones, each group by
        plugin name (as ``meiqia plugins`` lists them). Unlike pluggy's order (the
        last registered first), it does not depend on the order entry points and
        plugin files happen to be loaded in."""
        def key(impl: Any) -> tuple[int, str]:
            rank = 0 if impl.tryfirst else 2 if impl.trylast else 1
            return rank, self.plugin_name(impl.plugin)

        return sorted(getattr(self.hook, hook_name).get_hookimpls(), key=key)

    def call_in_turn(self, hook_name: str, fold: Callable[[str, Any, dict[str, Any]],
                                                          dict[str, Any] | None],
                     check: Callable[[Any], str | None] | None = None,
                     **kwargs: Any) -> HookCall:
        """Call the implementations of ``hook_name`` one after the other
        (``in_turn_order``), each within its budget, each seeing what the ones before
        it made of the arguments: after an answer that is not None,
        ``fold(plugin, answer, kwargs)`` returns the keyword arguments of the next
        implementation, or None to stop there. ``check`` is the runtime's (an
        unusable answer is a failure of its plugin). A failure does not stop the
        turn: the next implementation gets the arguments as they were. Results are
        the answers, in order."""
        done = HookCall()
        team_id = team_of(kwargs)
        impls = self.in_turn_order(hook_name)
        if impls:
            kwargs = hook_arguments(kwargs)
        for impl in impls:
            args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
            name = self.plugin_name(impl.plugin)
            result, failure = self.runtime.run(name, hook_name, impl.function, args,
                                               team_id=team_id, check=check)
            if failure is not None:
                done.failures.append(failure)
                continue
            if result is None:
                continue
            done.results.append(result)
            following = fold(name, result, kwargs)
            if following is None:
                break
            kwargs = hook_arguments(following)
        return done

    def _call(self, hook_name: str, kwargs: dict[str, Any], timeout: float | None,
              first: bool, check: Callable[[Any], str | None] | None = None,
              sift: Callable[[Any, list[Any]], str | None] | None = None) -> HookCall:
        caller = getattr(self.hook, hook_name)
        done = HookCall()
        runtime = self.runtime
        team_id = team_of(kwargs)
        impls = caller.get_hookimpls()
        if impls and hook_name not in LIFECYCLE:
            # Plugins see documented, read-only views, never database rows.
            kwargs = hook_arguments(kwargs)
        # pluggy calls the last registered first; keep that order.
        for impl in reversed(impls):
            args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
            name = self.plugin_name(impl.plugin)
            if hook_name in LIFECYCLE:
                done.results.append((name, impl.function(**args)))
                continue
            if hook_name in NOTIFICATIONS:
                failure = runtime.notify(name, hook_name, impl.function, args, team_id=team_id)
                if failure is not None:
                    done.failures.append(failure)
                continue
            usable: list[Any] = []
            result, failure = runtime.run(name, hook_name, impl.function, args,
                                          team_id=team_id, budget=timeout,
                                          check=check if sift is None else _sifting(sift, usable))
            if failure is not None:
                done.failures.append(failure)
                if sift is None or failure.kind != "malformed":
                    continue
            if sift is not None:  # what is usable of the answer, even of one that failed
                result = usable or None
            if result is not None:
                done.results.append((name, result))
                if first:
                    break
        return done

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin with its origin, version and the hooks it implements (not
        those whose ``startup`` failed: ``failed_at_startup``)."""
        rows = []
        for plugin in self.get_plugins():
            name = self.plugin_name(plugin)
            hooks = sorted(
                caller.name for caller in self.get_hookcallers(plugin) or []
            )
            rows.append(
                {
                    "name": name,
                    "origin": getattr(plugin, "__meiqia_origin__", "plugin"),
                    "version": getattr(plugin, "__meiqia_version__", None)
                    or _version_of(plugin),
                    "hooks": hooks,
                }
            )
        return sorted(rows, key=lambda row: (row["origin"], row["name"]))

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if registered is not None:
            self.runtime.origins[registered] = getattr(plugin, "__meiqia_origin__", "plugin")
        return registered


def list_sifter(noun: str, problem_of: Callable[[Any], str | None]
                ) -> Callable[[Any, list[Any]], str | None]:
    """A ``sift`` for ``call_flat`` (docs/plugins.md, "How plugins are run"): the
    answer is None or a list; each item ``problem_of`` finds nothing wrong with is
    kept, the others are dropped and named by their place and what is wrong
    (``1 of 2 panels dropped: panel 2: url: not an http(s) URL``), never their
    values. ``noun`` is the singular of the items (``panel``, ``link``)."""
    def sift(result: Any, usable: list[Any]) -> str | None:
        if result is None:
            return None
        if not isinstance(result, list | tuple):
            return f"expected a list of {noun}s, got {type(result).__name__}"
        problems = []
        for number, item in enumerate(result, 1):
            problem = problem_of(item)
            if problem is None:
                usable.append(item)
            else:
                problems.append(f"{noun} {number}: {problem}")
        if not problems:
            return None
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        return (f"{len(problems)} of {len(result)} {noun}s dropped: "
                + "; ".join(problems[:3]) + more)
    return sift


def _sifting(sift: Callable[[Any, list[Any]], str | None],
             usable: list[Any]) -> Callable[[Any], str | None]:
    """The runtime's ``check`` for one implementation's answer, keeping its usable
    items in ``usable`` (``PluginManager.call_flat``)."""
    def check(result: Any) -> str | None:
        return sift(result, usable)
    return check


def _version_of(plugin: Any) -> str:
    if getattr(plugin, "__meiqia_origin__", None) == "built-in":
        from meiqia import __version__

        return __version__
    version = getattr(plugin, "__version__", None)
    return str(version) if version else ""


def _tag(plugin: Any, origin: str, version: str | None = None) -> Any:
    try:
        plugin.__meiqia_origin__ = origin
        if version:
            plugin.__meiqia_version__ = version
    except (AttributeError, TypeError):
        pass
    return plugin


def _failed(on_error: Callable[[PluginLoadError], None] | None, error: PluginLoadError,
            cause: BaseException) -> None:
    """Raise ``error``, or hand it to ``on_error`` (the CLI's: the plugin is skipped and
    named, the others load)."""
    error.__cause__ = cause
    if on_error is None:
        raise error
    on_error(error)


def _load_instance_plugins(pm: PluginManager, folder: Path, disabled: set[str],
                           on_error: Callable[[PluginLoadError], None] | None = None) -> None:
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.py")):
        if {path.stem, f"instance:{path.stem}"} & disabled:
            log.info("plugin instance:%s: not loaded (DISABLED_PLUGINS)", path.stem)
            continue
        name = f"meiqia_instance_plugins.{path.stem}"
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            pm.register(_tag(module, "instance"), name=f"instance:{path.stem}")
        except Exception as exc:
            sys.modules.pop(name, None)
            # Named as DISABLED_PLUGINS names it; the file follows.
            _failed(on_error, PluginLoadError(f"instance:{path.stem}", exc, str(path)), exc)


def _load_entry_points(pm: PluginManager, disabled: set[str],
                       only: Iterable[str] | None = None,
                       on_error: Callable[[PluginLoadError], None] | None = None) -> None:
    from importlib.metadata import entry_points

    wanted = None if only is None else set(only)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        if wanted is not None and ep.name not in wanted:
            continue  # ENTRY_POINT_PLUGINS names others: not imported
        if ep.name in disabled:
            # Not imported at all: a disabled plugin's import-time code never runs.
            log.info("plugin %s: not loaded (DISABLED_PLUGINS)", ep.name)
            continue
        try:
            plugin = ep.load()
            version = ep.dist.version if ep.dist is not None else None
            pm.register(_tag(plugin, "entry point", version), name=ep.name)
        except Exception as exc:
            _failed(on_error, PluginLoadError(ep.name, exc), exc)


def make_plugin_manager(
    instance_path: str | Path,
    extra: Iterable[Any] = (),
    modules: Iterable[str] = (),
    disabled: Iterable[str] = (),
    hook_timeout: float | None = None,
    runtime: PluginRuntime | None = None,
    entry_points: Iterable[str] | None = None,
    on_error: Callable[[PluginLoadError], None] | None = None,
) -> PluginManager:
    """Build the manager: built-ins, entry points, instance folder, then ``extra``.

    ``modules`` are dotted module names from the config (``PLUGINS``); ``extra``
    are plugin objects (tests register throwaway plugins this way).
    ``disabled`` (``DISABLED_PLUGINS``) names plugins not to load, whatever
    their source, by the name ``meiqia plugins`` shows: a built-in's short name,
    an entry point's name, ``instance:<file stem>`` (or the stem), a module
    path, an extra object's ``__name__``. Raises PluginLoadError naming the
    plugin that failed, and pluggy's PluginValidationError for a misspelt hook
    (``check_pending``). ``entry_points`` (``ENTRY_POINT_PLUGINS``): None loads
    every installed entry point, a list only those names. With ``on_error`` a plugin
    that fails to load (or has a misspelt hook) is handed to it as a PluginLoadError
    and left out, and the others load (the ``meiqia`` command's plugin commands).
    """
    pm = PluginManager("meiqia", runtime)
    if hook_timeout is not None:
        pm.runtime.settings.ceiling = hook_timeout
    pm.add_hookspecs(hookspecs)
    disabled = set(disabled)
    for path in DEFAULT_PLUGINS:
        short = path.rsplit(".", 1)[-1]
        if {short, path} & disabled:
            log.info("plugin %s: not loaded (DISABLED_PLUGINS)", short)
            continue
        try:
            module = importlib.import_module(path)
        except Exception as exc:
            raise PluginLoadError(path, exc) from exc
        pm.register(_tag(module, "built-in"), name=short)
    _load_entry_points(pm, disabled, entry_points, on_error)
    _load_instance_plugins(pm, Path(instance_path) / "plugins", disabled, on_error)
    for path in modules:
        if path in disabled:
            log.info("plugin %s: not loaded (DISABLED_PLUGINS)", path)
            continue
        try:
            module = importlib.import_module(path)
            pm.register(_tag(module, "config"), name=path)
        except Exception as exc:
            _failed(on_error, PluginLoadError(path, exc), exc)
    for index, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", None) or f"extra-{index}"
        if name in disabled:
            log.info("plugin %s: not loaded (DISABLED_PLUGINS)", name)
            continue
        pm.register(_tag(plugin, "extra"), name=name)
    while True:
        try:
            pm.check_pending()
            return pm
        except pluggy.PluginValidationError as exc:
            # A misspelt hook: named like any plugin that fails to load (a one-line
            # error from the CLI), not pluggy's traceback.
            name = pm.get_name(exc.plugin) or str(exc.plugin)
            _failed(on_error, PluginLoadError(name, exc), exc)
            pm.unregister(exc.plugin)


class PluginStartupError(RuntimeError):
    """A plugin's ``startup`` raised and ``PLUGIN_STARTUP_FAILURE`` is ``refuse``."""


def start_plugins(pm: PluginManager, app: Any, on_failure: str = "disable") -> list[str]:
    """Call every plugin's ``startup(app)``; return the names of plugins it disabled.

    A plugin whose ``startup`` raises is unregistered (its hooks are no longer
    called) and logged by name, so one plugin with a bad setting does not keep
    the service down; with ``on_failure="refuse"`` the application refuses to
    start instead, naming the plugin (PluginStartupError).
    """
    failed = []
    for impl in reversed(pm.hook.startup.get_hookimpls()):
        name = pm.plugin_name(impl.plugin)
        try:
            impl.function(**{arg: app for arg in impl.argnames if arg == "app"})
        except Exception as exc:
            if on_failure == "refuse":
                raise PluginStartupError(
                    f"plugin {name!r}: startup failed: {type(exc).__name__}: {exc}") from exc
            log.error("plugin %s: hook startup raised %s: %s; the plugin is disabled "
                      "(PLUGIN_STARTUP_FAILURE=refuse stops start-up instead)",
                      name, type(exc).__name__, exc, exc_info=exc)
            pm.failed_at_startup[name] = {
                "origin": getattr(impl.plugin, "__meiqia_origin__", "plugin"),
                "error": f"{type(exc).__name__}: {exc}"[:300],
                "at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
            pm.unregister(impl.plugin)
            failed.append(name)
    return failed
