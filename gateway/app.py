"""Wiring: the public and admin applications, their shared objects and their lifecycle.

The only module that creates app keys, sessions, stores and listeners. ``GatewayServer``
starts both listeners on a compiled Runtime and stops them in order.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import web

from . import __version__
from .admin import create_admin_app
from .auth.providers import IdentityProviders
from .config.compile import compile_runtime
from .config.load import LoadedConfig
from .logs import event
from .metrics import GatewayMetrics
from .middleware import errors, make_observe
from .pipeline import handle
from .proxy.forward import Forwarder, create_session
from .reload import ConfigWatcher, ReadFile, ReloadResult
from .revocation.memory import MemoryRevocationStore
from .revocation.store import RevocationStore
from .runtime import Runtime, RuntimeHolder
from .settings import Address, Settings
from .watched_files import TrackedFiles

log = logging.getLogger("gateway")

RUNTIME = web.AppKey("runtime", RuntimeHolder)
METRICS = web.AppKey("metrics", GatewayMetrics)
SESSION = web.AppKey("session", aiohttp.ClientSession)


def create_app(
    holder: RuntimeHolder, metrics: GatewayMetrics, session: aiohttp.ClientSession
) -> web.Application:
    """The public application: one catch-all handler behind observe → errors."""
    forwarder = Forwarder(session, metrics)
    app = web.Application(
        middlewares=[make_observe(holder, forwarder, metrics), errors],
        client_max_size=0,
    )
    app[RUNTIME] = holder
    app[METRICS] = metrics
    app[SESSION] = session
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


class GatewayServer:
    """Both listeners, the upstream session and the revocation store of one process."""

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
        self.settings = Settings.from_spec(loaded.spec)
        self.metrics = metrics or GatewayMetrics(version=__version__)
        # JWKS caches and introspectors: outlive a Runtime, so a reload keeps warm keys
        self.providers = providers or IdentityProviders(self.metrics)
        self.store: RevocationStore = store if store is not None else MemoryRevocationStore()
        self.holder: RuntimeHolder | None = None
        self.watcher: ConfigWatcher | None = None
        self._watch_interval = watch_interval
        self._runners: list[web.BaseRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._ready = False
        self.public_address: Address | None = None
        self.admin_address: Address | None = None

    def is_ready(self) -> bool:
        return self._ready

    def _compile(self, loaded: LoadedConfig, read_file: ReadFile) -> Runtime:
        """The one place this process compiles a config: at start and on every reload.

        Long-lived resources are handed to the compiler here, so a reload reuses them: the
        revocation store (owned by this server) and, when issuers fetch keys, the JWKS cache
        registry keyed by (issuer, jwks_uri), so an issuer whose settings did not change keeps
        its keys. The upstream session is shared by every snapshot through the Forwarder.
        """
        return compile_runtime(
            loaded, metrics=self.metrics, revocation_store=self.store, read_file=read_file,
            providers=self.providers,
        )

    async def _after_swap(self, old: Runtime, new: Runtime) -> None:
        """After a reload's swap: start the key caches of new issuers (in the background) and
        close those that only ``old`` used. The session and the revocation store are shared."""
        self.providers.start()
        await self.providers.retain_for([new.verifier])

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
        self.providers.start()  # first key fetches in the background: start-up never waits
        self._session = create_session()
        public = create_app(self.holder, self.metrics, self._session)
        admin = create_admin_app(
            self.holder, self.metrics, self.store, self.is_ready,
            reload=self.reload, reload_status=self.watcher.status,
        )
        try:
            self.public_address = await self._listen(public, self.settings.public)
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

    async def _listen(self, app: web.Application, address: Address) -> Address:
        field_size = self.settings.header_field_size  # see settings.HEADER_FIELD_SIZE
        runner = web.AppRunner(
            app, access_log=None, auto_decompress=False, handle_signals=False,
            shutdown_timeout=10.0, max_field_size=field_size,
            # a client that leaves cancels its handler: the upstream request is released
            handler_cancellation=True,
        )
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, address.host, address.port, reuse_address=True)
        await site.start()
        bound = runner.addresses[-1] if runner.addresses else None
        return Address(address.host, int(bound[1]) if bound else address.port)

    async def stop(self) -> None:
        self._ready = False
        if self.watcher is not None:
            await self.watcher.stop()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
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
