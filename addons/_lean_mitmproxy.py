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

The same for pyparsing (~6 MB, built at import): `mitmproxy.command` imports it and
`mitmproxy.command_lexer` builds a grammar with it, used only to parse typed command lines
(mitmproxy's console), which the gateway never does. `pyparsing` becomes a lazily loaded
module that runs on first use of one of its names, and `command_lexer` one whose
`quote`/`unquote` (what `command.py` takes from it) run the real module on first call; any
other name runs it at once. Nothing is lost, only deferred.
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


def _deferred(name: str, functions: tuple[str, ...] = ()) -> None:
    """Register `name` as its own module, not yet run: it runs on first use of a name.

    Not `importlib.util.LazyLoader`: the import statement itself reads the module's
    `__spec__`, which makes a LazyLoader module run at once. Here the spec is an ordinary
    attribute; only a name the module does not have yet (PEP 562) runs it. `functions` are
    names callers take from the module at import time: they get a stand-in that runs the
    module on first call and calls the real function.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return  # not there: leave the import system alone
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    loaded = False

    def load() -> None:
        nonlocal loaded
        if not loaded:
            loaded = True
            loader.exec_module(module)  # the real module, into the same object

    def forward(function: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            load()
            return module.__dict__[function](*args, **kwargs)

        call.__name__ = call.__qualname__ = function
        return call

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        load()
        if attr in module.__dict__:
            return module.__dict__[attr]
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    for function in functions:
        setattr(module, function, forward(function))
    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = module


def _defer_pyparsing() -> None:
    if "pyparsing" in sys.modules or LEXER in sys.modules:
        return  # already loaded (a test, a tool): nothing left to save
    _deferred("pyparsing")
    _deferred(LEXER, LEXER_FUNCTIONS)


LEXER = "mitmproxy.command_lexer"
LEXER_FUNCTIONS = ("quote", "unquote")  # what mitmproxy.command imports by name

_install()
_defer_pyparsing()
