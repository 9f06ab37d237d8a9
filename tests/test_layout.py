"""The tree's rules, checked from the source: imports point cli -> addons -> lockgate, and
packaging sees every subpackage (a subpackage missing from `packages=` would be silently
missing from the wheel). Issue 10 moves the core into subpackages; these hold it to that."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> the package it is installed as (pyproject's package-dir).
SOURCES = {"lockgate": "lockgate", "addons": "lockgate.addons", "cli": "lockgate.cli"}
FRAMEWORKS = ("mitmproxy", "typer", "rich", "textual", "click")

# Addons importing other addons (issue 10 item 2 removed them all: this set may only shrink,
# and is empty). The package's __init__ (the pipeline) and master.py (the lean master, not an
# addon) assemble them. `_flow` is the one addon-support module every addon may import; a
# composite's children (addons/oauth/) may import their package's own `_http` support module,
# and its __init__ (the parent) its children.
KNOWN_LATERAL: set[tuple[str, str]] = set()
ASSEMBLERS = ("__init__", "master")
SUPPORT = "_flow"


def modules(source: str) -> Iterator[tuple[str, set[str]]]:
    """Each module under `source` as installed, with every name it imports absolutely."""
    base = ROOT / source
    for path in sorted(base.rglob("*.py")):
        parts = path.with_suffix("").relative_to(base).parts
        name = ".".join((SOURCES[source], *parts))
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names |= {f"{node.module}.{a.name}" for a in node.names}
        yield name, names


def test_the_core_imports_no_framework_and_nothing_above_it() -> None:
    bad = {
        name: sorted(
            n
            for n in names
            if n.split(".")[0] in FRAMEWORKS
            or n.split(".")[:2] in (["lockgate", "addons"], ["lockgate", "cli"])
        )
        for name, names in modules("lockgate")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_addons_never_import_the_cli() -> None:
    bad = {
        name: sorted(n for n in names if n.startswith("lockgate.cli"))
        for name, names in modules("addons")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def _addon_of(module: str) -> str:
    """The addon (or composite) a module under lockgate.addons belongs to."""
    return module.split(".", 1)[0]


def test_addons_import_each_other_no_more_than_today() -> None:
    found = set()
    for name, names in modules("addons"):
        mine = name.removeprefix("lockgate.addons.")
        if mine in ASSEMBLERS:
            continue
        parent, _, child = mine.partition(".")
        for n in names:
            if not n.startswith("lockgate.addons."):
                continue
            other = n.removeprefix("lockgate.addons.")
            target = _addon_of(other)
            if target in (SUPPORT, mine) or other.startswith(f"{SUPPORT}."):
                continue  # the shared support module (or one of its names)
            if target == parent and child:
                # Inside a composite: children see only the package's underscore support
                # module; the parent (`__init__`) sees its children.
                rest = other.removeprefix(f"{parent}.")
                if child == "__init__" or (rest != other and rest.split(".")[0].startswith("_")):
                    continue
                found.add((mine, other))
                continue
            found.add((mine, other))
    assert found <= KNOWN_LATERAL, sorted(found - KNOWN_LATERAL)


# CLI modules that still import rich or textual outside cli/views/ (issue 10 item 4 moves
# them: this set may only shrink). cli/audit.py's progress bar for large logs is the last.
KNOWN_RICH_OUTSIDE_VIEWS: set[str] = set()


def test_rich_and_textual_only_under_cli_views() -> None:
    """Commands are thin adapters: what they show, and how, lives in cli/views/."""
    found = {
        name
        for name, names in modules("cli")
        if not name.startswith("lockgate.cli.views")
        and any(n.split(".")[0] in ("rich", "textual") for n in names)
    }
    assert found <= KNOWN_RICH_OUTSIDE_VIEWS, sorted(found - KNOWN_RICH_OUTSIDE_VIEWS)
    # A module that moved its rich out leaves the list in the same change.
    assert found == KNOWN_RICH_OUTSIDE_VIEWS, sorted(KNOWN_RICH_OUTSIDE_VIEWS - found)


def test_every_package_folder_is_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = set(config["tool"]["setuptools"]["packages"])
    folders = {
        ".".join((SOURCES[source], *init.parent.relative_to(ROOT / source).parts))
        for source in SOURCES
        for init in (ROOT / source).rglob("__init__.py")
    }
    assert folders <= packages, sorted(folders - packages)


def test_commands_that_do_not_serve_never_load_mitmproxy() -> None:
    """mitmproxy takes about a second to import: `--help` and the non-serving commands' help
    must not pay for it (`up` and `demo` import it when they serve)."""
    import subprocess
    import sys

    probe = (
        "import runpy, sys\n"
        "sys.argv = ['lockgate', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('lockgate.cli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('MITMPROXY', 'mitmproxy' in sys.modules)\n"
    )
    for args in (["--help"], ["connect", "--help"], ["audit", "--help"], ["servers", "--help"]):
        out = subprocess.run(
            [sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=60
        )
        assert "MITMPROXY False" in out.stdout, (args, out.stdout[-300:], out.stderr[-300:])


# What serving never needs (issue 12, "Lean and flat"): each is imported where it is used, or
# (mitmproxy's default addons, with flask and ldap3) not at all. pydantic stays: the profile is
# pydantic models. typer only when the typer app reads `up`'s command line; the entry point
# (cli/entry.py) serves plain `lockgate up` options without it.
NOT_FOR_SERVING = (
    "textual",  # the live view, only on a terminal
    "typer",
    "rich",  # only for a terminal: lines to a pipe are plain prints
    "flask",  # mitmproxy's onboarding app, via mitmproxy/addons/__init__.py
    "ldap3",  # mitmproxy's proxy auth, the same way
    "httpx",  # outbound calls: metadata, upstream OAuth, replays, listings
    "anyio",
    "pygments",  # httpx's command line pulls it
    "jsonschema_rs",  # the first compiled inputSchema
    "confusable_homoglyphs",  # the first non-ASCII text or tool name
)


def test_serving_loads_only_what_serving_needs(tmp_path: Path) -> None:
    """In fresh interpreters: a gateway and its pipeline built for a profile, and `lockgate up
    --quiet` up to serving, import nothing of NOT_FOR_SERVING (the command line: typer only),
    so a cut cannot silently come back."""
    import os
    import subprocess
    import sys

    profile = tmp_path / "profile.toml"
    profile.write_text(
        '[identity]\nkind = "none"\n\n[upstreams.u]\nurl = "http://127.0.0.1:9/mcp"\n'
        'auth = "none"\n\n[routes.r]\nupstream = "u"\n',
        encoding="utf-8",
    )
    serving = (
        "from lockgate.addons import pipeline\n"
        "from lockgate.addons.config import Config\n"
        "from lockgate.addons.master import Gateway\n"
        "from lockgate.guardrails.confusables import spoofed_names\n"
        "from lockgate.guardrails.text import fold\n"
        "Gateway(PROFILE, audit_log=PROFILE.with_name('audit.jsonl'))\n"
        "pipeline(Config())\n"
        "spoofed_names(['send_email', 'Send_Email', 'get_note'])  # ASCII names\n"
        "fold('Send an EMAIL')\n"
    )
    command = (  # the typer app's `up` (what --help, typos and other forms go through)
        "from lockgate.cli import serving, up\n"
        "seen = []\n"
        "serving.serve = lambda path, **kw: seen.append(path)  # where the gateway would start\n"
        "up.up(profile=PROFILE, listen='127.0.0.1:0', quiet=True)\n"
        "assert seen == [PROFILE], seen\n"
    )
    entry = (  # the installed command's entry point on plain options: no typer at all
        "from lockgate.cli import entry, serving\n"
        "seen = []\n"
        "serving.serve = lambda path, **kw: seen.append(path)\n"
        "sys.argv = ['lockgate', 'up', '-p', str(PROFILE), '--listen', '127.0.0.1:0', '-q']\n"
        "entry.main()\n"
        "assert seen == [PROFILE], seen\n"
    )
    env = {**os.environ, "LOCKGATE_HOME": str(tmp_path / "home")}
    for code, allowed in ((serving, set()), (entry, set()), (command, {"typer"})):
        probe = (
            f"import pathlib, sys\nPROFILE = pathlib.Path({str(profile)!r})\n{code}"
            "print('LOADED', sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, *NOT_FOR_SERVING],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert f"LOADED {sorted(allowed)}" in out.stdout, (code, out.stdout[-500:])
