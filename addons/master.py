"""The embedded gateway: a lean mitmproxy master in reverse mode with our pipeline (not an addon).

Only the addons that serve traffic are loaded (core, proxyserver, next_layer,
tlsconfig): mitmproxy's default set costs CPU on every flow, and that CPU is
the pipeline's budget.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitmproxy import options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from lockgate import paths
from lockgate.addons import Pipeline
from lockgate.addons.audit import Audit
from lockgate.addons.client_wire import install_client_guards
from lockgate.addons.config import Config
from lockgate.addons.oauth import OAuthServer
from lockgate.addons.streams import install_stream_ends
from lockgate.addons.wire import install_error_pages
from lockgate.audit import log as audit_core
from lockgate.authserver.keys import default_key_source, load_or_create_signing_key
from lockgate.errors import GatewayError, KeyringUnavailable
from lockgate.identity.provider import OIDCError, Provider, discover
from lockgate.keyring import get_entry
from lockgate.profile.model import Profile, is_loopback_host, load_profile, split_listen

# The reverse-mode target is never used: the router sends every routed request to its
# upstream, and answers everything else itself. Port 9 is "discard".
PLACEHOLDER_TARGET = "http://127.0.0.1:9"


class _ErrorCollector(logging.Handler):
    """Keeps mitmproxy's startup errors, so a busy port becomes one clear sentence."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class Gateway:
    """Runs the pipeline for one profile inside the current event loop."""

    def __init__(
        self,
        profile_path: Path,
        *,
        listen: str | None = None,
        audit_log: Path | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.profile_path = profile_path
        self.profile: Profile = load_profile(profile_path)
        self.listen = listen or self.profile.gateway.listen
        try:
            host, _ = split_listen(self.listen)
        except ValueError as e:
            raise GatewayError(f"--listen: {e}") from e
        if self.profile.identity.kind in ("none", "dev") and not is_loopback_host(host):
            raise GatewayError(
                f"The profile's identity kind {self.profile.identity.kind!r} only allows "
                f"listening on loopback, not on {host}",
                'listen on 127.0.0.1, or use [identity] kind = "oidc"',
            )
        self.oidc_secret: str | None = None
        if self.profile.identity.kind in ("dev", "oidc"):
            # Fail at start, not at the first sign-in: gateway tokens are signed with a key
            # kept in the OS keyring (a locked or missing keyring says so here).
            load_or_create_signing_key(default_key_source(self.profile.identity.signing_key))
        secret_ref = self.profile.identity.client_secret
        if self.profile.identity.kind == "oidc" and secret_ref is not None:
            entry = secret_ref.removeprefix("keyring:")
            self.oidc_secret = get_entry(entry)
            if not self.oidc_secret:
                raise GatewayError(
                    f"The identity provider's client secret is not in the keyring "
                    f"(entry {entry!r})",
                    "store it there, or remove [identity] client_secret for a public client",
                )
        self.audit_log = audit_log or paths.audit_log_path()
        self.on_event = on_event
        self.master: Master | None = None
        self.config: Config | None = None
        self.port: int | None = None
        self._ready = asyncio.Event()
        self._errors = _ErrorCollector()

    @property
    def base_url(self) -> str:
        host, _ = split_listen(self.listen)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def route_url(self, route: str) -> str:
        return f"{self.base_url}/mcp/{route}"

    async def run(self, started: Callable[[Gateway], None] | None = None) -> None:
        """Serve until `shutdown()`; raises GatewayError when the port cannot be bound."""
        try:  # before mitmproxy, whose start-up error would name the port instead
            audit_core.load_key(create=True)
        except KeyringUnavailable as e:
            raise KeyringUnavailable(
                "The audit log's key lives in the OS keyring and none is usable", e.fix
            ) from e
        # An unwritable audit directory stops the start here, in one sentence, rather than
        # as a failed hook once mitmproxy runs.
        audit_core.check_writable(self.audit_log)
        install_error_pages(self.profile.gateway.max_response_bytes)
        gw = self.profile.gateway
        install_client_guards(
            gw.client_head_timeout,
            gw.client_idle_timeout,
            gw.max_connections,
            body_timeout=gw.client_body_timeout,
        )
        install_stream_ends()
        host, port = split_listen(self.listen)
        provider: Provider | None = None
        identity = self.profile.identity
        if identity.kind == "oidc":
            assert identity.issuer is not None
            try:
                provider = await discover(identity.issuer)
            except OIDCError as e:
                raise GatewayError(e.message, e.fix) from None
        opts = options.Options()
        master = Master(opts, event_loop=asyncio.get_running_loop())
        self.master = master
        config = Config()
        self.config = config
        chain = Pipeline(config)
        audit = next(a for a in chain.children if isinstance(a, Audit))
        oauth = next(a for a in chain.children if isinstance(a, OAuthServer))
        oauth.auth.oidc = provider
        oauth.auth.oidc_secret = self.oidc_secret
        if self.on_event is not None:
            audit.listeners.append(self.on_event)
        master.addons.add(
            core.Core(),
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            chain,
            _Started(self, started),
        )
        bind = f"[{host}]" if ":" in host else host
        logging.getLogger().addHandler(self._errors)
        try:
            opts.update(
                mode=[f"reverse:{PLACEHOLDER_TARGET}@{bind}:{port}"],
                connection_strategy="lazy",
                keep_host_header=True,
                # HTTP/1.1 only, on both sides: the client-wire guards (framing, head and
                # body deadlines) watch HTTP/1, so a TLS client is not offered h2 in ALPN.
                http2=False,
                # Request bodies are counted as they arrive and cut at the profile's limit
                # (responses are exempt, see addons/wire.py).
                body_size_limit=str(self.profile.gateway.max_body_bytes),
                confdir=str(paths.mitmproxy_confdir()),
                lockgate_profile=str(self.profile_path),
                lockgate_audit_log=str(self.audit_log),
                **self._tls_options(),
            )
            await master.run()
        finally:
            logging.getLogger().removeHandler(self._errors)
        if self.port is None:
            detail = "; ".join(self._errors.messages[-1:]) or "the proxy server did not start"
            raise GatewayError(
                f"The gateway could not listen on {self.listen} ({detail})",
                "choose another port with --listen 127.0.0.1:PORT or stop what uses this one",
            )

    def _tls_options(self) -> dict[str, Any]:
        """Upstream TLS is verified against certifi's bundle, or the profile's own CA file."""
        ca = self.profile.gateway.upstream_ca
        if ca is None:
            return {}
        path = Path(ca).expanduser()
        if not path.is_absolute():
            path = self.profile_path.parent / path
        if not path.is_file():
            raise GatewayError(
                f"gateway.upstream_ca names {path}, which is not a file",
                "point it at a PEM file of the CA that signs your upstreams' certificates",
            )
        return {"ssl_verify_upstream_trusted_ca": str(path)}

    def shutdown(self) -> None:
        """Thread-safe: ask the master to stop."""
        if self.master is not None:
            self.master.shutdown()

    async def stopped(self) -> None:
        """Close the listening sockets now (they outlive `shutdown()` otherwise)."""
        if self.master is not None:
            ps = self.master.addons.get("proxyserver")
            if ps is not None:
                await ps.servers.update([])


class _Started:
    """Reads the bound port once mitmproxy runs (port 0 picks a free one)."""

    def __init__(self, gateway: Gateway, callback: Callable[[Gateway], None] | None) -> None:
        self.gateway = gateway
        self.callback = callback

    def running(self) -> None:
        assert self.gateway.master is not None
        ps = self.gateway.master.addons.get("proxyserver")
        addrs = ps.listen_addrs() if ps is not None else []
        if not addrs:
            self.gateway.master.shutdown()
            return
        self.gateway.port = addrs[0][1]
        # What start-up built lives as long as the process: keep it out of the cyclic
        # collector's full passes, which otherwise grow with every import.
        gc.freeze()
        if not self.gateway.profile.gateway.public_url and self.gateway.config is not None:
            self.gateway.config.base_url = self.gateway.base_url
        self.gateway._ready.set()
        if self.callback is not None:
            self.callback(self.gateway)
