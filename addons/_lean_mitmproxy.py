"""`mitmproxy.addons` without its default set: imported first by `lockgate.addons`, not an addon.

Why: `mitmproxy/addons/__init__.py` imports all 36 of mitmproxy's addons to offer
`default_addons()`, and with them flask, werkzeug, jinja2 (the onboarding app) and ldap3,
pyasn1 (proxy auth): ~12 MB of RSS in every process that imports one addon (`mitmproxy.master`
itself imports `mitmproxy.addons.termlog`). The gateway loads four of them (core,
proxyserver, next_layer, tlsconfig; `master.py`).

How: when nothing has imported `mitmproxy.addons` yet, it is registered as the package it
is (same spec, same `__path__`) without running its `__init__`, so importing a submodule
loads only that submodule. Nothing is lost: an attribute the package would have had is
looked up on first use, a submodule by importing it, anything else (`default_addons`) by
running the real `__init__` into the same module then.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

PACKAGE = "mitmproxy.addons"


def _install() -> None:
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not the package this was written for: leave the import system alone
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    loaded = False

    def __getattr__(name: str) -> Any:  # PEP 562: only names the module does not have yet
        nonlocal loaded
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"{PACKAGE}.{name}") is not None:
            return importlib.import_module(f"{PACKAGE}.{name}")
        if not loaded:
            loaded = True
            loader.exec_module(module)  # the real __init__: default_addons and every addon
            if name in module.__dict__:
                return module.__dict__[name]
        raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[PACKAGE] = module
    parent: types.ModuleType = importlib.import_module("mitmproxy")
    parent.addons = module  # type: ignore[attr-defined]


_install()
