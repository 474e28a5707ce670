"""The ``run`` command: load the config, create the development keys, pick the event loop and
serve until SIGINT/SIGTERM (SIGHUP reloads)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .. import __version__
from ..config.durations import parse_duration
from ..config.load import LoadedConfig
from ..errors import ConfigError
from ..logs import setup_logging
from .common import ensure_dev_keys, fail, load, print_problems


def cmd_run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        loaded = load(args.config)
        ensure_dev_keys(loaded)
    except ConfigError as err:
        return print_problems(err)
    except OSError as exc:
        return fail(f"cannot create the development key: {exc}")
    try:
        interval = parse_duration(args.watch_interval)
    except ValueError as exc:
        return fail(f"--watch-interval: {exc}")
    try:
        run = event_loop_runner(args.loop)
    except ImportError:
        return fail("--loop uvloop: uvloop is not installed (pip install 'oauth2-gateway[speed]')")
    return run(_run(loaded, interval or None))


def event_loop_runner(choice: str) -> Callable[[Coroutine[Any, Any, int]], int]:
    """``asyncio.run`` or ``uvloop.run``: ``auto`` takes uvloop when it is installed."""
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return asyncio.run
    return uvloop.run


async def _run(loaded: LoadedConfig, watch_interval: float | None = None) -> int:
    from ..app import GatewayServer
    from ..demo import start_demo_upstream

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = GatewayServer(loaded, watch_interval=watch_interval)
    loop.add_signal_handler(signal.SIGHUP, server.request_reload)
    demo = None
    try:
        if server.settings.demo_upstream is not None:
            demo = await start_demo_upstream(server.settings.demo_upstream)
        await server.start()
    except ConfigError as err:
        if demo is not None:
            await demo.cleanup()
        return print_problems(err)
    except OSError as exc:
        if demo is not None:
            await demo.cleanup()
        return fail(f"cannot listen: {exc}")
    scheme = "https" if server.settings.tls is not None else "http"
    print(
        f"oauth2-gateway {__version__}: public {scheme}://{server.public_address} "
        f"admin http://{server.admin_address} (Ctrl-C stops)",
        file=sys.stderr, flush=True,
    )
    try:
        await stop.wait()
    finally:
        await server.stop()
        if demo is not None:
            await demo.cleanup()
    return 0
