"""A command's start: FlowKit imported without its plotting stack until FlowKit draws a plot.

``import flowkit`` loads bokeh, contourpy and scipy.stats for its plotting functions and
scipy.interpolate for FlowJo's tabulated transforms: 1.5-2 s of a 2.3-2.7 s import on a 2-core
machine, paid before a batch can gate its first event, by a command that never draws a FlowKit
plot (cytomnt's plots are matplotlib). While FlowKit's own package executes,
:func:`defer_flowkit_plotting` gives it placeholder modules for those; each name it takes from
them (``figure``, ``gaussian_kde``, ``interpolate.interp1d``...) is the real object from its
first use on (a call or an attribute), so every FlowKit function works as before, and only its
first use pays the import. Anything else that imports those modules gets the real ones.
Should FlowKit's import fail with placeholders (a newer FlowKit that subclasses a bokeh class
while importing, say), it is imported again the ordinary way.

The command line installs this; ``import cytomnt`` and the Python API leave imports alone.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types

#: Modules (with their submodules) FlowKit's package imports for plots and FlowJo transforms only.
DEFERRED = ("bokeh", "contourpy", "scipy.stats", "scipy.interpolate")

_LOCK = threading.RLock()
#: The thread executing FlowKit's package while it is deferring (None: not deferring); only its
#: own imports get placeholders, never another thread's.
_state = {"deferring": None}


class _Deferred:
    """A name taken from a placeholder module: the real object on first use."""

    __slots__ = ("_module", "_name", "_real")

    def __init__(self, module: str, name: str):
        self._module, self._name, self._real = module, name, None

    def _resolve(self):
        if self._real is None:
            module = _real_module(self._module)
            try:
                self._real = getattr(module, self._name)
            except AttributeError:              # a submodule not imported by its package
                self._real = _real_module(f"{self._module}.{self._name}")
        return self._real

    def __call__(self, *args, **kwargs):
        return self._resolve()(*args, **kwargs)

    def __getattr__(self, attr):
        return getattr(self._resolve(), attr)

    def __repr__(self) -> str:
        return f"<{self._module}.{self._name}, imported on first use>"


class _Placeholder(types.ModuleType):
    """A module FlowKit imports for plotting, not loaded yet: its names resolve on first use."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Deferred(self.__name__, name)


def _deferred(name: str) -> bool:
    """``name`` is one of DEFERRED or a submodule of one."""
    return any(name == d or name.startswith(d + ".") for d in DEFERRED)


def _drop_placeholders() -> None:
    """Take every placeholder out of ``sys.modules`` and off its parent package (``scipy.stats``
    on ``scipy``), so the next import of its name is the real one."""
    for key in [k for k, m in sys.modules.items() if isinstance(m, _Placeholder)]:
        del sys.modules[key]
        parent, _, child = key.rpartition(".")
        if parent and isinstance(getattr(sys.modules.get(parent), child, None), _Placeholder):
            delattr(sys.modules[parent], child)


def _real_module(name: str) -> types.ModuleType:
    """The real module ``name`` (the placeholders dropped first)."""
    with _LOCK:
        _drop_placeholders()
        before, _state["deferring"] = _state["deferring"], None
        try:
            return importlib.import_module(name)
        finally:
            _state["deferring"] = before


class _PlaceholderLoader(importlib.abc.Loader):
    def create_module(self, spec):
        module = _Placeholder(spec.name)
        module.__path__ = []                    # a package: its submodules are placeholders too
        return module

    def exec_module(self, module) -> None:
        pass


class _FlowKitLoader(importlib.abc.Loader):
    """FlowKit's own loader, its package executed with the plotting modules deferred."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):                 # get_resource_reader (FlowKit's schema file), ...
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _LOCK:
            _state["deferring"] = threading.get_ident()
        try:
            self._loader.exec_module(module)
            return
        except Exception:  # noqa: BLE001 - imported again below, the ordinary way, which reports
            pass
        finally:
            with _LOCK:
                _state["deferring"] = None
                _drop_placeholders()        # the ones FlowKit holds stay with it; nobody else gets one
        for key in [k for k in sys.modules if k.startswith("flowkit.")]:
            del sys.modules[key]
        self._loader.exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == "flowkit":
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None:
                spec.loader = _FlowKitLoader(spec.loader)
            return spec
        if _state["deferring"] == threading.get_ident() and _deferred(fullname):
            return importlib.machinery.ModuleSpec(fullname, _PlaceholderLoader(), is_package=True)
        return None


def defer_flowkit_plotting() -> None:
    """From now on in this process, FlowKit is imported with its plotting modules deferred (see
    the module's docstring); nothing happens if FlowKit is imported already."""
    if "flowkit" in sys.modules or any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
