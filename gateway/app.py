"""Wiring: the public and admin applications, their shared objects and their lifecycle.

The only module that creates sessions, stores and listeners. ``GatewayServer``
starts both listeners on a compiled Runtime and stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import __version__
from .admin import create_admin_app
from .auth.providers import IdentityProviders
from .config.compile import compile_runtime
from .config.load import LoadedConfig
from .connection import GatewayRunner
from .errors import ConfigError
from .https import create_redirect_app, reload_certificate, server_context
from .logs import event
from .metrics import GatewayMetrics
from .middleware import errors, make_observe
from .pipeline import handle
from .proxy.forward import Forwarder
from .proxy.outgoing import finish_response
from .reload import ConfigWatcher, ReadFile, ReloadResult
from .revocation.memory import MemoryRevocationStore
from .revocation.redis import RedisRevocationStore
from .revocation.redis_target import RedisSettings
from .revocation.store import RevocationStore
from .runtime import Runtime, RuntimeHolder
from .settings import Address, Settings
from .watched_files import TrackedFiles

log = logging.getLogger("gateway")

#: After the drain deadline: how long WebSocket sessions get for their 1001 close handshake,
#: and how long aiohttp waits for the remaining handlers before and after cancelling them.
_CANCEL_GRACE = 2.0
_HANDLER_GRACE = 0.5


@dataclass(slots=True)
class ListenerState:
    """Mutable state of the public listener: set when the gateway drains for shutdown."""

    draining: bool = False


async def defer_expectation(request: web.Request) -> None:
    """Replaces aiohttp's Expect handler, which answers 100 before any middleware: the 100 is
    sent by the forwarder, after the authorization decision (proxy/body.py)."""
    return None


def create_app(
    holder: RuntimeHolder,
    metrics: GatewayMetrics,
    forwarder: Forwarder,
    listener: ListenerState,
) -> web.Application:
    """The public application: one catch-all handler behind observe → errors."""
    app = web.Application(
        middlewares=[make_observe(holder, forwarder, metrics), errors],
        client_max_size=0,
    )
    app.router.add_route("*", "/{tail:.*}", handle, expect_handler=defer_expectation)

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        finish_response(request, response, draining=listener.draining)

    app.on_response_prepare.append(on_prepare)
    return app


def create_store(loaded: LoadedConfig, metrics: GatewayMetrics) -> RevocationStore:
    """The revocation store the config asks for (created once: it survives reloads)."""
    spec = loaded.spec.revocation
    if spec is not None and spec.store == "redis":
        return RedisRevocationStore(RedisSettings.from_spec(spec), metrics)
    return MemoryRevocationStore()


class GatewayServer:
    """Both listeners, the forwarder and the revocation store of one process."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        metrics: GatewayMetrics | None = None,
        store: RevocationStore | None = None,
        watch_interval: float | None = None,
        providers: IdentityProviders | None = None,
    ) -> None:
        """``watch_interval``: poll the config files every so many seconds (None: only
        ``reload()``, SIGHUP and ``POST /admin/reload`` reload)."""
        self.loaded = loaded
        self.settings = Settings.from_spec(loaded.spec, loaded.base_dir)
        self.metrics = metrics or GatewayMetrics(version=__version__)
        # JWKS caches and introspectors: outlive a Runtime, so a reload keeps warm keys
        self.providers = providers or IdentityProviders(self.metrics)
        # the revocation store outlives every Runtime too (its settings need a restart)
        self.store: RevocationStore = (
            store if store is not None else create_store(loaded, self.metrics)
        )
        self.holder: RuntimeHolder | None = None
        self.watcher: ConfigWatcher | None = None
        self._watch_interval = watch_interval
        self._runners: list[web.BaseRunner] = []
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

    def _compile(self, loaded: LoadedConfig, read_file: ReadFile) -> Runtime:
        """The one place this process compiles a config: at start and on every reload.

        Long-lived resources are handed to the compiler here, so a reload reuses them: the
        revocation store (owned by this server) and, when issuers fetch keys, the JWKS cache
        registry keyed by (issuer, jwks_uri), so an issuer whose settings did not change keeps
        its keys. The upstream pools (one per route) live in the Forwarder and survive too.
        """
        if self.settings.tls is not None:
            # watched like every file the config names: a renewed certificate is a reload
            for path in (self.settings.tls.cert_file, self.settings.tls.key_file):
                with contextlib.suppress(OSError):  # reload_tls() reports it, keeps the chain
                    read_file(path)
        return compile_runtime(
            loaded, metrics=self.metrics, revocation_store=self.store, read_file=read_file,
            providers=self.providers,
        )

    async def _after_swap(self, old: Runtime, new: Runtime) -> None:
        """After a reload's swap: start the key caches of new issuers (in the background) and
        close those that only ``old`` used; let the forwarder drop the pools and health checks
        of removed routes and start those of new ones; re-read the TLS certificate. The
        forwarder and the revocation store are shared."""
        self.providers.start()
        await self.providers.retain_for([new.verifier])
        if self.forwarder is not None:
            self.forwarder.retain(new)
        self.reload_tls()

    async def reload(self, trigger: str = "request") -> ReloadResult:
        """Reload the config file now (a bad config is rejected; the result says so)."""
        assert self.watcher is not None, "the server is not started"
        return await self.watcher.reload(trigger)

    def request_reload(self, trigger: str = "SIGHUP") -> None:
        """Schedule a reload, e.g. from a signal handler."""
        if self.watcher is not None:
            self.watcher.trigger(trigger)

    async def start(self) -> None:
        """Compile the config (ConfigError propagates) and start both listeners."""
        tracked = TrackedFiles()
        runtime = self._compile(self.loaded, tracked.read_bytes)
        self.metrics.record_config_loaded(runtime.sha256, time.time())
        self.holder = RuntimeHolder(runtime)
        self.watcher = ConfigWatcher(
            self.loaded.path, holder=self.holder, compile=self._compile, metrics=self.metrics,
            settings=self.settings, interval=self._watch_interval, after_swap=self._after_swap,
        )
        self.watcher.adopt(self.loaded, tracked)
        if self.settings.tls is not None:
            try:
                self.tls_context = server_context(self.settings.tls)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError([self.loaded.problem(
                    ("server", "tls"), f"cannot load the certificate chain: {exc}"
                )]) from None
        # after the last check that can refuse to start: nothing to stop before this point
        self.providers.start()  # first key fetches in the background: start-up never waits
        if isinstance(self.store, RedisRevocationStore):
            await self.store.start()  # bounded wait for the first load
        self.forwarder = Forwarder(self.metrics)
        self.forwarder.start(runtime)
        public = create_app(self.holder, self.metrics, self.forwarder, self.listener)
        admin = create_admin_app(
            self.holder, self.metrics, self.store, self.is_ready,
            reload=self.reload, reload_status=self.watcher.status,
        )
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
        self.watcher.start()
        self._ready = True
        event(
            "gateway_started", "gateway started",
            public=str(self.public_address), admin=str(self.admin_address),
            routes=len(runtime.routes.rules()), config_sha256=runtime.sha256,
            watch_interval_seconds=self._watch_interval,
        )

    async def _listen(
        self, app: web.Application, address: Address, *, public: bool = False
    ) -> Address:
        options: dict[str, Any] = {
            "access_log": None, "auto_decompress": False, "handle_signals": False,
            "max_field_size": self.settings.header_field_size,  # see settings.HEADER_FIELD_SIZE
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
        if self.watcher is not None:
            await self.watcher.stop()
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
        await self.providers.close()
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
