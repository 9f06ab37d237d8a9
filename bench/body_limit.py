"""RSS of a `lockgate up` gateway before and after a 150 MB chunked body sent without a token.

Issue 9, item 3: the body must be cut at `gateway.max_body_bytes` (default 4 MiB) while it
arrives, not buffered whole. Prints the gateway's RSS and peak RSS (VmHWM) around the upload,
the bytes the client managed to send, and the status it got.

    uv run python bench/body_limit.py [--mb 150] [--path /oauth/register]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.gateway import profile_text, running_gateway


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def upload(port: int, path: str, total: int) -> tuple[int, str]:
    chunk = b"a" * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        try:
            while sent < total:
                sock.sendall(frame)
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        try:
            status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
        except OSError as e:
            status = f"({type(e).__name__})"
    return sent, status


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=150)
    parser.add_argument("--path", default="/oauth/register")
    args = parser.parse_args()
    profile = profile_text({"up": "http://127.0.0.1:9/mcp"}, {"open": "up"}, kind="dev")
    env = {"LOCKGATE_SIGNING_KEY_SOURCE": "memory"}
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_gateway(profile, Path(tmp), env=env) as gw,
    ):
        port = int(gw.base_url.rsplit(":", 1)[1])
        time.sleep(1)
        before, _ = rss_mb(gw.proc.pid)
        sent, status = upload(port, args.path, args.mb * 1024 * 1024)
        time.sleep(0.5)
        after, peak = rss_mb(gw.proc.pid)
    print(f"path {args.path}: body {args.mb} MB chunked, no token")
    print(f"client sent {sent / 1024 / 1024:.1f} MB, answer: {status}")
    print(f"gateway RSS before {before:.0f} MB, after {after:.0f} MB, peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
