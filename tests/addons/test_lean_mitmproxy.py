"""addons/_lean_mitmproxy.py: `mitmproxy.addons` without its __init__ stays the package it is.

In fresh interpreters, since which of `lockgate.addons` and `mitmproxy.addons` is imported
first decides it (under pytest, the tests' own mitmproxy imports may come first)."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_gateways_addons_load_without_the_default_set() -> None:
    out = _run(
        "import sys\n"
        "import lockgate.addons.master\n"
        "print(sorted(m for m in ('flask', 'ldap3', 'mitmproxy.addons.onboarding',"
        " 'mitmproxy.addons.proxyauth', 'mitmproxy.addons.dumper') if m in sys.modules))\n"
        "print(sorted(m for m in ('mitmproxy.addons.core', 'mitmproxy.addons.proxyserver',"
        " 'mitmproxy.addons.next_layer', 'mitmproxy.addons.tlsconfig') if m in sys.modules))\n"
    )
    assert out.splitlines() == [
        "[]",
        "['mitmproxy.addons.core', 'mitmproxy.addons.next_layer', "
        "'mitmproxy.addons.proxyserver', 'mitmproxy.addons.tlsconfig']",
    ]


def test_everything_the_package_offers_still_loads_on_first_use() -> None:
    out = _run(
        "import sys\n"
        "import lockgate.addons\n"
        "import mitmproxy.addons as addons\n"
        "from mitmproxy.addons import dumper\n"  # a submodule, imported
        "from mitmproxy.test import taddons\n"  # mitmproxy's own test harness
        "print(addons.anticache.__name__)\n"  # a submodule, as an attribute
        "print(len(addons.default_addons()) > 20, 'flask' in sys.modules)\n"  # the real __init__
        "try:\n"
        "    addons.no_such_name\n"
        "except AttributeError as e:\n"
        "    print('AttributeError', e)\n"
    )
    assert out.splitlines() == [
        "mitmproxy.addons.anticache",
        "True True",
        "AttributeError module 'mitmproxy.addons' has no attribute 'no_such_name'",
    ]


def test_an_already_imported_package_is_left_alone() -> None:
    out = _run(
        "import mitmproxy.addons, sys\n"
        "real = sys.modules['mitmproxy.addons']\n"
        "import lockgate.addons\n"
        "print(sys.modules['mitmproxy.addons'] is real, hasattr(real, 'default_addons'))\n"
    )
    assert out.strip() == "True True"


def test_pyparsing_waits_for_a_typed_command_line() -> None:
    """pyparsing (~6 MB) is loaded by the first parsed command line, not by mitmproxy.command;
    what command.py took from the lexer by name, and the grammar, then work as before."""
    out = _run(
        "import sys\n"
        "import lockgate.addons.master\n"
        "import pyparsing\n"  # an import statement alone does not load it
        "print(sorted(m for m in sys.modules if m.startswith('pyparsing.')))\n"
        "from mitmproxy import command_lexer\n"
        "print(command_lexer.unquote('\"a b\"'), command_lexer.quote('a b'))\n"
        "print('pyparsing.core' in sys.modules)\n"
        "from mitmproxy.test import taddons\n"
        "with taddons.context() as tctx:\n"
        "    parts, _ = tctx.master.commands.parse_partial('view.flows.resolve @all')\n"
        "print([p.value for p in parts], pyparsing.Word.__name__)\n"
    )
    assert out.splitlines() == [
        "[]",
        'a b "a b"',
        "True",
        "['view.flows.resolve', ' ', '@all'] Word",
    ]


def test_an_already_imported_pyparsing_is_left_alone() -> None:
    out = _run(
        "import pyparsing, sys\n"
        "real = sys.modules['pyparsing']\n"
        "import lockgate.addons\n"
        "from mitmproxy import command_lexer\n"
        "print(sys.modules['pyparsing'] is real, command_lexer.unquote.__module__)\n"
    )
    assert out.strip() == "True mitmproxy.command_lexer"
