"""Wiring: the public and admin applications, their shared objects and their lifecycle.

The only module that creates app keys, sessions, stores and listeners. ``GatewayServer``
starts both listeners on a compiled Runtime and stops them in order.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from . import __version__
from .admin import create_admin_app
from .config.compile import compile_runtime
from .config.load import LoadedConfig
from .connection import GatewayRunner
from .errors import ConfigError
from .https import create_redirect_app, reload_certificate, server_context
from .metrics import GatewayMetrics
from .middleware import errors, make_observe
from .pipeline import handle
from .proxy.forward import Forwarder, create_session
from .proxy.outgoing import finish_response
from .revocation.memory import MemoryRevocationStore
from .revocation.store import RevocationStore
from .runtime import RuntimeHolder
from .settings import Address, Settings

log = logging.getLogger("gateway")

#: Header fields up to this size reach the gateway, so an oversized token gets the gateway's
#: own 401 (reason ``oversized``) rather than aiohttp's plain 400 (its default is 8190).
_HEADER_FIELD_SIZE = 32768

#: After the drain deadline: how long WebSocket sessions get for their 1001 close handshake,
#: and how long aiohttp waits for the remaining handlers before and after cancelling them.
_CANCEL_GRACE = 2.0
_HANDLER_GRACE = 0.5


@dataclass(slots=True)
class ListenerState:
    """Mutable state of the public listener: set when the gateway drains for shutdown."""

    draining: bool = False


RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", GatewayMetrics)
SESSION = web.AppKey("session", aiohttp.ClientSession)
FORWARDER = web.AppKey("forwarder", Forwarder)
LISTENER = web.AppKey("listener", ListenerState)


async def defer_expectation(request: web.Request) -> None:
    """Replaces aiohttp's Expect handler, which answers 100 before any middleware: the 100 is
    sent by the forwarder, after the authorization decision (proxy/body.py)."""
    return None


def create_app(
    holder: RuntimeHolder,
    metrics: GatewayMetrics,
    session: aiohttp.ClientSession,
    forwarder: Forwarder | None = None,
    listener: ListenerState | None = None,
) -> web.Application:
    """The public application: one catch-all handler behind observe → errors."""
    forwarder = forwarder if forwarder is not None else Forwarder(session, metrics)
    listener = listener if listener is not None else ListenerState()
    app = web.Application(
        middlewares=[make_observe(holder, forwarder, metrics), errors],
        client_max_size=0,
    )
    app[RUNTIME] = holder
    app[METRICS] = metrics
    app[SESSION] = session
    app[FORWARDER] = forwarder
    app[LISTENER] = listener
    app.router.add_route("*", "/{tail:.*}", handle, expect_handler=defer_expectation)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        finish_response(request, response, draining=listener.draining)

    app.on_response_prepare.append(on_prepare)
    return app


class GatewayServer:
    """Both listeners, the upstream session and the revocation store of one process."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        metrics: GatewayMetrics | None = None,
        store: RevocationStore | None = None,
    ) -> None:
        self.loaded = loaded
        self.settings = Settings.from_spec(loaded.spec, loaded.base_dir)
        self.metrics = metrics or GatewayMetrics(version=__version__)
        self.store: RevocationStore = store if store is not None else MemoryRevocationStore()
        self.holder: RuntimeHolder | None = None
        self._runners: list[web.BaseRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._ready = False
        self.public_address: Address | None = None
        self.admin_address: Address | None = None
        self.redirect_address: Address | None = None
        self.forwarder: Forwarder | None = None
        self.listener = ListenerState()
        self.tls_context: ssl.SSLContext | None = None
        self._public_runner: GatewayRunner | None = None

    def is_ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        """Compile the config (ConfigError propagates) and start both listeners."""
        runtime = compile_runtime(
            self.loaded, metrics=self.metrics, revocation_store=self.store
        )
        self.metrics.record_config_loaded(runtime.sha256, time.time())
        self.holder = RuntimeHolder(runtime)
        if self.settings.tls is not None:
            try:
                self.tls_context = server_context(self.settings.tls)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError([self.loaded.problem(
                    ("server", "tls"), f"cannot load the certificate chain: {exc}"
                )]) from None
        self._session = create_session()
        self.forwarder = Forwarder(self._session, self.metrics)
        self.forwarder.start(runtime)
        public = create_app(self.holder, self.metrics, self._session, self.forwarder,
                            self.listener)
        admin = create_admin_app(self.holder, self.metrics, self.store, self.is_ready)
        try:
            self.public_address = await self._listen(public, self.settings.public,
                                                     public=True)
            if self.settings.http_redirect is not None:
                port = self.settings.https_port or self.public_address.port
                self.redirect_address = await self._listen(
                    create_redirect_app(port), self.settings.http_redirect
                )
            self.admin_address = await self._listen(admin, self.settings.admin)
        except BaseException:
            await self.stop()
            raise
        self._ready = True
        log.info(
            "gateway started",
            extra={"public": str(self.public_address), "admin": str(self.admin_address),
                   "routes": len(runtime.routes.rules()), "config_sha256": runtime.sha256},
        )

    async def _listen(
        self, app: web.Application, address: Address, *, public: bool = False
    ) -> Address:
        # aiohttp refuses header lines over 8190 bytes with its own plain 400 before any
        # gateway code runs: leave room for the largest bearer token we are to judge.
        field_size = max(_HEADER_FIELD_SIZE, self.loaded.spec.server.max_token_bytes + 64)
        options: dict[str, Any] = {
            "access_log": None, "auto_decompress": False, "handle_signals": False,
            "max_field_size": field_size,
            # a client that leaves cancels its handler: the upstream request is released
            "handler_cancellation": True,
        }
        runner: web.AppRunner
        if public:
            limits = self.settings.connections
            runner = self._public_runner = GatewayRunner(
                app, head_timeout=limits.header_timeout,
                on_head_timeout=self.metrics.record_header_timeout,
                keepalive_timeout=limits.keepalive_timeout,
                # an unread request body closes the connection instead of being drained
                lingering_time=0,
                # drain() has waited already; cancelled handlers get a short grace
                shutdown_timeout=_HANDLER_GRACE,
                **options,
            )
        else:
            runner = web.AppRunner(app, shutdown_timeout=10.0, **options)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, address.host, address.port, reuse_address=True,
                           ssl_context=self.tls_context if public else None)
        await site.start()
        bound = runner.addresses[-1] if runner.addresses else None
        return Address(address.host, int(bound[1]) if bound else address.port)

    def reload_tls(self) -> bool:
        """Re-read the public listener's certificate chain (for a reload: SIGHUP, file change).

        New handshakes use the new chain; established connections are not touched. Returns
        False (and logs, keeping the old chain) when the files do not make a valid chain.
        """
        if self.tls_context is None or self.settings.tls is None:
            return False
        try:
            reload_certificate(self.tls_context, self.settings.tls)
        except (OSError, ssl.SSLError) as exc:
            log.error("TLS certificate reload failed, keeping the current one: %s", exc)
            return False
        log.info("TLS certificate reloaded", extra={"cert_file": str(self.settings.tls.cert_file)})
        return True

    async def stop(self) -> None:
        """Graceful: not ready at once, stop accepting, let in-flight requests (WebSocket
        sessions included) finish for up to ``server.shutdown_timeout``, then close."""
        self._ready = False
        self.listener.draining = True
        if self._public_runner is not None:
            busy = await self._public_runner.drain(self.settings.connections.shutdown_timeout)
            if busy:
                log.warning("shutdown: %d connection(s) still busy after %.1fs: closing",
                            busy, self.settings.connections.shutdown_timeout)
                if self.forwarder is not None:
                    await self.forwarder.close_websockets(_CANCEL_GRACE)
            self._public_runner = None
        for runner in self._runners:  # public first, admin (readiness) last
            await runner.cleanup()
        self._runners.clear()
        if self.forwarder is not None:
            await self.forwarder.close()
            self.forwarder = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.store.close()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve_forever(server: GatewayServer, stop: asyncio.Event) -> None:
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()
