"""The plugin manager: built-ins, entry points, ``instance/plugins/*.py``.

Built-in plugins use the same hooks as everyone else (DESIGN §7); overridable
defaults are ``@hookimpl(trylast=True)``. A plugin that fails to load stops
start-up naming it; a hook that raises at run time is logged with the plugin's
name and skipped (``call``), so one bad plugin never breaks a conversation.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pluggy

from meiqia import hookspecs

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

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"plugin {name!r} failed to load: {type(cause).__name__}: {cause}")
        self.plugin_name = name


_executor = concurrent.futures.ThreadPoolExecutor(
    max_workers=8, thread_name_prefix="meiqia-hook"
)


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the isolation rules of DESIGN §7."""

    hook_timeout: float = 5.0

    def call(self, hook_name: str, timeout: float | None = None, **kwargs: Any) -> list:
        """Call every implementation of ``hook_name``; return their non-None results.

        An implementation that raises (or, with ``timeout``, runs longer) is
        logged with its plugin's name and skipped.
        """
        return self._call(hook_name, kwargs, timeout, first=False)

    def call_first(self, hook_name: str, timeout: float | None = None, **kwargs: Any) -> Any:
        """Like ``call`` for firstresult hooks: the first non-None result, or None."""
        results = self._call(hook_name, kwargs, timeout, first=True)
        return results[0] if results else None

    def call_flat(self, hook_name: str, **kwargs: Any) -> list:
        """``call`` for hooks returning lists: one flat list of all items."""
        items: list = []
        for result in self.call(hook_name, **kwargs):
            if isinstance(result, list | tuple):
                items.extend(result)
            else:
                items.append(result)
        return items

    def _call(
        self, hook_name: str, kwargs: dict[str, Any], timeout: float | None, first: bool
    ) -> list:
        caller = getattr(self.hook, hook_name)
        results = []
        # pluggy calls the last registered first; keep that order.
        for impl in reversed(caller.get_hookimpls()):
            args = {name: kwargs[name] for name in impl.argnames if name in kwargs}
            name = self.get_name(impl.plugin) or repr(impl.plugin)
            try:
                if timeout:
                    # The hook's thread sees the caller's app and request context
                    # (Flask keeps them in context variables), as without a timeout.
                    context = contextvars.copy_context()
                    future = _executor.submit(context.run, impl.function, **args)
                    result = future.result(timeout=timeout)
                else:
                    result = impl.function(**args)
            except concurrent.futures.TimeoutError:
                log.error("plugin %s: hook %s timed out after %ss", name, hook_name, timeout)
                continue
            except Exception:
                log.exception("plugin %s: hook %s raised", name, hook_name)
                continue
            if result is not None:
                results.append(result)
                if first:
                    break
        return results

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin with its origin and the hooks it implements (for the CLI)."""
        rows = []
        for plugin in self.get_plugins():
            name = self.get_name(plugin) or repr(plugin)
            hooks = sorted(
                caller.name for caller in self.get_hookcallers(plugin) or []
            )
            rows.append(
                {
                    "name": name,
                    "origin": getattr(plugin, "__meiqia_origin__", "plugin"),
                    "hooks": hooks,
                }
            )
        return sorted(rows, key=lambda row: (row["origin"], row["name"]))


def _tag(plugin: Any, origin: str) -> Any:
    try:
        plugin.__meiqia_origin__ = origin
    except (AttributeError, TypeError):
        pass
    return plugin


def _load_instance_plugins(pm: PluginManager, folder: Path) -> None:
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.py")):
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
            raise PluginLoadError(str(path), exc) from exc


def _load_entry_points(pm: PluginManager) -> None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(_tag(plugin, "entry point"), name=ep.name)
        except Exception as exc:
            raise PluginLoadError(ep.name, exc) from exc


def make_plugin_manager(
    instance_path: str | Path,
    extra: Iterable[Any] = (),
    modules: Iterable[str] = (),
    disabled: Iterable[str] = (),
    hook_timeout: float = 5.0,
) -> PluginManager:
    """Build the manager: built-ins, entry points, instance folder, then ``extra``.

    ``modules`` are dotted module names from the config; ``extra`` are plugin
    objects (tests register throwaway plugins this way). Raises PluginLoadError
    naming the plugin that failed, and pluggy's PluginValidationError for a
    misspelt hook (``check_pending``).
    """
    pm = PluginManager("meiqia")
    pm.hook_timeout = hook_timeout
    pm.add_hookspecs(hookspecs)
    disabled = set(disabled)
    for path in DEFAULT_PLUGINS:
        short = path.rsplit(".", 1)[-1]
        if short in disabled:
            continue
        try:
            module = importlib.import_module(path)
        except Exception as exc:
            raise PluginLoadError(path, exc) from exc
        pm.register(_tag(module, "built-in"), name=short)
    _load_entry_points(pm)
    _load_instance_plugins(pm, Path(instance_path) / "plugins")
    for path in modules:
        try:
            module = importlib.import_module(path)
            pm.register(_tag(module, "config"), name=path)
        except Exception as exc:
            raise PluginLoadError(path, exc) from exc
    for index, plugin in enumerate(extra):
        name = getattr(plugin, "__name__", None) or f"extra-{index}"
        pm.register(_tag(plugin, "extra"), name=name)
    pm.check_pending()
    return pm
