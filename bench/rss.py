"""Where a serving lockgate's memory goes: RSS at start and after N calls, against bare mitmdump.

    uv run python bench/rss.py                # 10,000 calls per path (about a minute)
    uv run python bench/rss.py --quick        # 1,000 calls per path
    uv run python bench/rss.py --calls 20000

One run, one upstream (bench/upstream.py notes-json), each proxy in its own process, all
started at once (bench/run.py's helpers):

- `mitmdump`: bare mitmdump in reverse mode with bench/oneline_addon.py;
- `lean`: bench/lean_master.py, the embedded master lockgate builds on (same one-line addon);
- `lockgate`: `lockgate up --quiet`, kind = "none", `auth = "none"`;
- `lockgate (metered)`: the same command started through this file (`--child`), which
  records, for every module imported, the RSS its import added minus what its own imports
  added (its *self* cost), and reports them summed per top-level package (lockgate per wing)
  when asked (SIGUSR1): once at start, once after the calls, so what the first requests
  import shows apart. The meter costs a little memory itself: its total is shown apart.

With `--before DIR` (a source tree of another commit, e.g. from `git archive`), that tree's
`lockgate up` is measured too (`before`), with the same interpreter and dependencies: its
`lockgate/`, `addons/` and `cli/` are linked into the installed layout and put first on
PYTHONPATH.

Each path gets 4 client threads, each one session: `initialize`, one `tools/list` (so the
argument validator compiles the listed schemas, as with a real client), then `tools/call
get_note` until the path has had N calls. VmRSS (/proc/PID/status) at start (before any
request) and after the calls.

Then, for the packages that cost most, each one *alone*: a fresh interpreter imports just
the modules of that package the gateway had loaded, and the RSS it adds over a bare
interpreter is shown (shared dependencies count in each, so these do not add up; the self
costs do).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


# --- the metered child: imports nothing before the meter is in place ------------------------


def _child(out_path: str, argv: list[str]) -> None:
    """Run `lockgate <argv>` with every import's self RSS recorded; SIGUSR1 writes them."""
    import _frozen_importlib as bootstrap  # the import system itself (importlib._bootstrap)
    import json
    import signal
    import threading

    page = os.sysconf("SC_PAGE_SIZE")
    statm = open("/proc/self/statm", "rb", buffering=0)  # noqa: SIM115  (read for the process' life)

    def rss() -> int:
        statm.seek(0)
        return int(statm.read().split()[1]) * page

    start = rss()
    costs: dict[str, int] = {}
    stacks = threading.local()
    original = bootstrap._load_unlocked

    def load_unlocked(spec: object) -> object:
        stack: list[int] = stacks.__dict__.setdefault("s", [])
        before = rss()
        stack.append(0)
        try:
            return original(spec)
        finally:
            nested = stack.pop()
            total = rss() - before
            name = getattr(spec, "name", "?")
            costs[name] = costs.get(name, 0) + total - nested
            if stack:
                stack[-1] += total

    bootstrap._load_unlocked = load_unlocked
    meter = rss() - start

    reports = [0]

    def report(signum: int, frame: object) -> None:
        reports[0] += 1
        data = {
            "start_bytes": start,
            "meter_bytes": meter,
            "now_bytes": rss(),
            "modules": dict(costs),
        }
        path = f"{out_path}.{reports[0]}"
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(path + ".tmp", path)

    signal.signal(signal.SIGUSR1, report)
    sys.argv = ["lockgate", *argv]
    from lockgate.cli.entry import main  # the installed command's entry point

    main()


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    _child(sys.argv[2], sys.argv[4:] if sys.argv[3:4] == ["--"] else sys.argv[3:])
    sys.exit(0)


# --- the benchmark -----------------------------------------------------------------------

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, HERE)
import run  # noqa: E402  (bench/run.py: the processes, the raw client)

THREADS = 4
MB = 1024 * 1024


def installed_layout(tree: Path, into: Path) -> Path:
    """`tree`'s packages as installed (addons/ -> lockgate/addons, cli/ -> lockgate/cli),
    as symlinks under `into`; the directory to put on PYTHONPATH."""
    pkg = into / "lockgate"
    pkg.mkdir(parents=True)
    for entry in (tree / "lockgate").iterdir():
        (pkg / entry.name).symlink_to(entry.resolve())
    for name in ("addons", "cli"):
        (pkg / name).symlink_to((tree / name).resolve())
    return into


def group_of(module: str) -> str:
    """The package a module's cost is counted under: its top level; lockgate by wing."""
    parts = module.split(".")
    if parts[0] == "lockgate" and len(parts) > 1:
        return ".".join(parts[:2])
    if parts[0] in sys.stdlib_module_names or parts[0].startswith("_frozen"):
        return "(stdlib)"
    return parts[0]


def drive(url: str, calls: int) -> int:
    """`calls` tools/call over THREADS sessions (each lists the tools once); the errors."""
    errors = [0]
    lock = threading.Lock()

    def work(per: int) -> None:
        bad = 0
        sess = run.Session(url).initialize()
        try:
            sess.rpc("tools/list", {})
            for _ in range(per):
                status, _, data = sess.post(sess.request_bytes("tools/call", run.CALL_PARAMS))
                if status != 200 or b'"result"' not in data:
                    bad += 1
        except (OSError, run.RpcError):
            bad += 1
        finally:
            sess.close()
        with lock:
            errors[0] += bad

    threads = [threading.Thread(target=work, args=(calls // THREADS,)) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors[0]


def alone_bytes(modules: list[str]) -> int:
    """RSS a fresh interpreter adds by importing `modules` (in order), over a bare one."""
    code = (
        "import importlib, sys\n"
        "def rss():\n"
        "    with open('/proc/self/statm') as f:\n"
        "        return int(f.read().split()[1]) * __import__('os').sysconf('SC_PAGE_SIZE')\n"
        "before = rss()\n"
        "for m in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception:\n"
        "        pass\n"
        "print(rss() - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *modules], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip().splitlines()[-1])


def signalled(pid: int, base: Path, n: int) -> dict[str, Any]:
    """Ask the metered gateway for its n-th report (SIGUSR1) and read it."""
    path = base.with_name(f"{base.name}.{n}")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the metered gateway wrote no report")
        time.sleep(0.05)
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def breakdown(
    data: dict[str, Any], top: int, at_start: dict[str, Any]
) -> tuple[list[str], dict[str, Any]]:
    costs: dict[str, int] = data["modules"]
    early: dict[str, int] = at_start["modules"]
    groups: dict[str, list[str]] = {}
    for name in costs:
        groups.setdefault(group_of(name), []).append(name)
    per = {g: sum(costs[m] for m in mods) for g, mods in groups.items()}
    total = sum(per.values())
    ranked = sorted(per, key=per.__getitem__, reverse=True)
    lines = [
        f"  {'package':<26} {'self MB':>8} {'of it later':>11} {'alone MB':>9} {'modules':>8}",
    ]
    result: dict[str, Any] = {}
    for g in ranked[:top]:
        alone = None
        if g != "(stdlib)":
            mods = sorted(groups[g], key=lambda m: (m.count("."), m))
            alone = alone_bytes(mods)
        later = sum(costs[m] - early.get(m, 0) for m in groups[g])
        result[g] = {
            "self_mb": round(per[g] / MB, 1),
            "imported_after_start_mb": round(later / MB, 1),
            "alone_mb": alone and round(alone / MB, 1),
        }
        shown = f"{alone / MB:9.1f}" if alone is not None else f"{'-':>9}"
        lines.append(f"  {g:<26} {per[g] / MB:8.1f} {later / MB:11.1f} {shown} {len(groups[g]):>8}")
    rest = ranked[top:]
    rest_mb = sum(per[g] for g in rest) / MB
    lines.append(f"  {'(' + str(len(rest)) + ' more packages)':<26} {rest_mb:8.1f}")
    late = sorted(set(costs) - set(early))
    lines.append(
        f"  imported by the requests, not at start: {len(late)} modules, "
        f"{sum(costs[m] for m in late) / MB:.1f} MB"
        + (f" ({', '.join(sorted({group_of(m) for m in late}))})" if late else "")
    )
    start, now, meter = data["start_bytes"], data["now_bytes"], data["meter_bytes"]
    runtime = now - start - total - meter
    lines += [
        f"  imports in all: {total / MB:.1f} MB over {len(costs)} modules; "
        f"interpreter before them {start / MB:.1f} MB; the meter {meter / MB:.1f} MB; "
        f"not imports (flows, caches, heap growth): {runtime / MB:.1f} MB; "
        f"metered process {now / MB:.1f} MB",
    ]
    result["_top_modules_mb"] = {
        m: round(c / MB, 2) for m, c in sorted(costs.items(), key=lambda kv: -kv[1])[:30]
    }
    result["_totals_mb"] = {
        "imports": round(total / MB, 1),
        "interpreter": round(start / MB, 1),
        "runtime": round(runtime / MB, 1),
        "process": round(now / MB, 1),
        "modules": len(costs),
    }
    return lines, result


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--calls", type=int, default=10_000, help="tools/call per path")
    ap.add_argument("--quick", action="store_true", help="1,000 calls per path")
    ap.add_argument("--top", type=int, default=18, help="packages shown in the breakdown")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--before", type=Path, help="also measure the lockgate source tree here")
    args = ap.parse_args()
    calls = 1000 if args.quick else args.calls
    work = Path(tempfile.mkdtemp(prefix="lockgate-rss-"))
    report_path = work / "imports.json"
    results: dict[str, Any] = {"calls": calls}
    try:
        up_url = f"http://127.0.0.1:{run.free_port()}/mcp"
        upstream = run.start_upstream("notes-json", run.urlsplit(up_url).port or 0)
        mitm, mitm_port = run.start_mitmdump(up_url, work / "mitmproxy-dump")
        lean, lean_port = run.start_lean(up_url, work / "mitmproxy-lean")
        profile = run.lockgate_profile({"notes": up_url}, {"notes": ("notes", "")})
        lg = run.start_lockgate("lockgate", profile, work / "lockgate")
        metered = run.start_lockgate(
            "lockgate (metered)",
            profile,
            work / "metered",
            launcher=[sys.executable, os.path.abspath(__file__), "--child", str(report_path), "--"],
        )
        before = None
        if args.before is not None:
            before = run.start_lockgate(
                "before",
                profile,
                work / "before",
                launcher=[sys.executable, "-P", "-m", "lockgate.cli"],  # -P: not the cwd's tree
                extra_env={"PYTHONPATH": str(installed_layout(args.before, work / "before-pkg"))},
            )
        run.wait_url(upstream)
        run.wait_port(mitm, mitm_port)
        run.wait_port(lean, lean_port)
        lg_url, metered_url = run.wait_url(lg), run.wait_url(metered)
        paths = {
            "mitmdump": (mitm, f"http://127.0.0.1:{mitm_port}/mcp"),
            "lean": (lean, f"http://127.0.0.1:{lean_port}/mcp"),
            "lockgate": (lg, f"{lg_url}/mcp/notes"),
            "lockgate (metered)": (metered, f"{metered_url}/mcp/notes"),
        }
        if before is not None:
            paths = {"before": (before, f"{run.wait_url(before)}/mcp/notes"), **paths}
        time.sleep(1.0)  # every process idle: the start samples
        start = {name: proc.rss_kib() for name, (proc, _) in paths.items()}
        at_start = signalled(metered.pid, report_path, 1)
        after: dict[str, int] = {}
        errors: dict[str, int] = {}
        for name, (proc, url) in paths.items():
            errors[name] = drive(url, calls)
            time.sleep(0.5)
            after[name] = proc.rss_kib()
        data = signalled(metered.pid, report_path, 2)
    finally:
        for p in reversed(run.RUNNING):
            p.stop()

    print(f"lockgate RSS ({calls} tools/call per path, {THREADS} sessions, one tools/list each)")
    print(f"{'path':<20} {'start MB':>9} {'after MB':>9} {'errors':>7}")
    for name in paths:
        print(f"{name:<20} {start[name] / 1024:9.1f} {after[name] / 1024:9.1f} {errors[name]:>7}")
        results[name] = {
            "start_mb": round(start[name] / 1024, 1),
            "after_mb": round(after[name] / 1024, 1),
            "errors": errors[name],
        }
    gap = (after["lockgate"] - after["mitmdump"]) / 1024
    print(f"lockgate - mitmdump after the calls: {gap:+.1f} MB (budget: lockgate <= 100 MB)")
    print("\nwhere lockgate's memory goes (self: RSS each import added in the metered gateway):")
    lines, results["breakdown"] = breakdown(data, args.top, at_start)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if all(v == 0 for v in errors.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
