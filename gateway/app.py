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
from .config.compile import compile_runtime
from .config.load import LoadedConfig
from .metrics import GatewayMetrics
from .middleware import errors, make_observe
from .pipeline import handle
from .proxy.forward import Forwarder, create_session
from .revocation.memory import MemoryRevocationStore
from .revocation.redis import RedisRevocationStore
from .revocation.redis_target import RedisSettings
from .revocation.store import RevocationStore
from .runtime import RuntimeHolder
from .settings import Address, Settings

log = logging.getLogger("gateway")

#: Header fields up to this size reach the gateway, so an oversized token gets the gateway's
#: own 401 (reason ``oversized``) rather than aiohttp's plain 400 (its default is 8190).
_HEADER_FIELD_SIZE = 32768

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


def create_store(loaded: LoadedConfig, metrics: GatewayMetrics) -> RevocationStore:
    """The revocation store the config asks for (created once: it survives reloads)."""
    spec = loaded.spec.revocation
    if spec is not None and spec.store == "redis":
        return RedisRevocationStore(RedisSettings.from_spec(spec), metrics)
    return MemoryRevocationStore()


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
        self.settings = Settings.from_spec(loaded.spec)
        self.metrics = metrics or GatewayMetrics(version=__version__)
        self.store: RevocationStore = (
            store if store is not None else create_store(loaded, self.metrics)
        )
        self.holder: RuntimeHolder | None = None
        self._runners: list[web.BaseRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._ready = False
        self.public_address: Address | None = None
        self.admin_address: Address | None = None

    def is_ready(self) -> bool:
        return self._ready

    async def start(self) -> None:
        """Compile the config (ConfigError propagates) and start both listeners."""
        runtime = compile_runtime(
            self.loaded, metrics=self.metrics, revocation_store=self.store
        )
        self.metrics.record_config_loaded(runtime.sha256, time.time())
        self.holder = RuntimeHolder(runtime)
        if isinstance(self.store, RedisRevocationStore):
            await self.store.start()  # bounded wait for the first load
        self._session = create_session()
        public = create_app(self.holder, self.metrics, self._session)
        admin = create_admin_app(self.holder, self.metrics, self.store, self.is_ready)
        try:
            self.public_address = await self._listen(public, self.settings.public)
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

    async def _listen(self, app: web.Application, address: Address) -> Address:
        # aiohttp refuses header lines over 8190 bytes with its own plain 400 before any
        # gateway code runs: leave room for the largest bearer token we are to judge.
        field_size = max(_HEADER_FIELD_SIZE, self.loaded.spec.server.max_token_bytes + 64)
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
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
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
