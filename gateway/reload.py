"""Hot reload: SIGHUP, the admin API or a changed file → load → compile → one atomic swap.

``ConfigWatcher`` learns which files the active config depends on (the config file, every
included file, every key, secret or token file the compiler read, and the glob patterns of
``include:``) by reading them through ``watched_files.TrackedFiles``. It polls their
``stat()`` (mtime, size, inode: a Kubernetes ConfigMap's ``..data`` symlink swap changes the
inode behind the path; a file modified in the last two seconds is hashed too) and acts once a
change has been stable for one interval, so a file caught half-written is not loaded. Before
compiling it compares the files' sha256 with those of the active config: a touch or a swap to
identical content changes nothing.

A reload either swaps a complete new ``Runtime`` into the holder (``holder.current = new``, one
assignment; requests read one snapshot each, so in-flight requests finish on the old one) or
changes nothing: an invalid config is rejected as a whole, logged with every problem
(``file:line: field: message``) and counted as ``gateway_config_reloads_total{result="failure"}``.
Restart-only settings (listeners) are never applied by a reload: a change to one is logged and
exported as ``gateway_config_restart_required``, and everything else is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .config.load import LoadedConfig, load_config
from .errors import ConfigError
from .logs import event
from .metrics import GatewayMetrics
from .runtime import Runtime, RuntimeHolder
from .settings import Settings, restart_changes
from .watched_files import Fingerprint, TrackedFiles, fingerprint

log = logging.getLogger("gateway.reload")

ReadFile = Callable[[Path], bytes]
Compile = Callable[[LoadedConfig, ReadFile], Runtime]
AfterSwap = Callable[[Runtime, Runtime], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    result: Literal["success", "failure", "unchanged"]
    generation: int                       # of the config serving after this attempt
    sha256: str                           # of the config serving after this attempt
    problems: tuple[str, ...] = ()        # on failure: file:line: field: message
    restart_required: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "result": self.result, "generation": self.generation, "sha256": self.sha256,
            "problems": list(self.problems), "restart_required": list(self.restart_required),
        }


@dataclass(slots=True)
class _State:
    tracked: TrackedFiles                                   # the active config's files
    failed: TrackedFiles | None = None                      # files of the last rejected try
    generation: int = 1
    loaded_at: float = 0.0
    restart_required: tuple[str, ...] = ()
    last_failure: tuple[str, ...] = ()
    seen: Fingerprint | None = None
    pending: Fingerprint | None = None
    tasks: set[asyncio.Task[ReloadResult]] = field(default_factory=set)
    stale: bool = False  # the files changed between the first load and adopt()


class ConfigWatcher:
    """Reloads the config at ``path`` into ``holder`` on request, on SIGHUP and on file change."""

    def __init__(
        self,
        path: Path,
        *,
        holder: RuntimeHolder,
        compile: Compile,
        metrics: GatewayMetrics,
        settings: Settings,
        interval: float | None = 1.0,
        after_swap: AfterSwap | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.holder = holder
        self._compile = compile
        self._metrics = metrics
        self._settings = settings
        self.interval = interval
        self._after_swap = after_swap
        self._environ = environ
        self._clock = clock
        self._lock = asyncio.Lock()
        self._state = _State(TrackedFiles(), loaded_at=clock())
        self._poller: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def adopt(self, loaded: LoadedConfig, tracked: TrackedFiles) -> None:
        """Take the running config as the baseline; ``tracked`` read the files it was compiled
        from (keys, secrets). The config files are read again through it: if they changed
        since ``loaded`` was read, the next reload does not take them as unchanged.
        """
        try:
            again: LoadedConfig | None = load_config(self.path, self._environ, files=tracked)
        except ConfigError:
            again = None
        self._state.tracked = tracked
        self._state.stale = again is None or again.sha256 != loaded.sha256
        self._state.seen = None  # the first polls compare contents with this baseline

    def start(self) -> None:
        if self.interval is not None and self._poller is None:
            self._poller = asyncio.create_task(self._poll(self.interval), name="config-watcher")

    async def stop(self) -> None:
        tasks = [t for t in (self._poller, *self._state.tasks) if t is not None]
        self._poller = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def trigger(self, trigger: str = "SIGHUP") -> None:
        """Schedule a reload (signal handlers cannot await)."""
        task = asyncio.get_running_loop().create_task(self.reload(trigger))
        self._state.tasks.add(task)
        task.add_done_callback(self._state.tasks.discard)

    # -- status ----------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._state.generation

    @property
    def restart_required(self) -> tuple[str, ...]:
        return self._state.restart_required

    def status(self) -> dict[str, object]:
        runtime = self.holder.current
        return {
            "generation": self._state.generation,
            "sha256": runtime.sha256,
            "loaded_at": self._state.loaded_at,
            "files": sorted(str(p) for p in self._state.tracked.digests),
            "watch_interval_seconds": self.interval,
            "restart_required": list(self._state.restart_required),
            "last_failure": list(self._state.last_failure),
            "settings": self._settings.describe(),
        }

    # -- reloading -------------------------------------------------------------------------

    def _watched(self) -> list[TrackedFiles]:
        state = self._state
        return [state.tracked] if state.failed is None else [state.tracked, state.failed]

    async def _poll(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check_files()
            except Exception:  # a bug must not end the watching
                log.exception("config watcher failed")

    async def check_files(self) -> ReloadResult | None:
        """One poll: reload when the watched files changed and have stayed so since the
        previous poll (a file caught half-written is not loaded); None when nothing was done.
        """
        state = self._state
        current = fingerprint(self._watched())
        if current == state.seen:
            state.pending = None
            return None
        if current != state.pending:
            state.pending = current
            return None
        state.pending = None
        result = await self.reload("file change")
        # What was acted on. If the reload added files to watch (includes, keys), the next
        # polls see a different fingerprint and compare contents: what did not change since
        # it was read is "unchanged", what did is reloaded.
        state.seen = current
        return result

    async def reload(self, trigger: str = "request") -> ReloadResult:
        """Reload now; never raises for a bad config (the result says what happened)."""
        async with self._lock:
            return await self._reload(trigger)

    async def _reload(self, trigger: str) -> ReloadResult:
        state = self._state
        old = self.holder.current
        if not state.stale and state.tracked.unchanged():
            # the files read as those of the running config (again, after a rejected edit)
            state.failed, state.last_failure = None, ()
            log.debug("config unchanged (%s)", trigger)
            return ReloadResult("unchanged", state.generation, old.sha256,
                                restart_required=state.restart_required)
        if not state.stale and state.failed is not None and state.failed.unchanged():
            # the same rejected files again: reported (and counted) once already
            return ReloadResult("failure", state.generation, old.sha256, state.last_failure,
                                state.restart_required)
        tracked = TrackedFiles()
        try:
            loaded = load_config(self.path, self._environ, files=tracked)
            new = self._compile(loaded, tracked.read_bytes)
        except ConfigError as err:
            return self._rejected(tracked, [str(p) for p in err.problems], trigger, old)
        self.holder.current = new  # the swap: one assignment
        state.tracked, state.failed, state.stale = tracked, None, False
        state.generation += 1
        state.loaded_at = self._clock()
        state.last_failure = ()
        self._metrics.record_config_loaded(new.sha256, state.loaded_at)
        added, removed, changed = _route_changes(old, new)
        self._metrics.forget_routes(removed)
        state.restart_required = tuple(
            restart_changes(self._settings, Settings.from_spec(loaded.spec, loaded.base_dir))
        )
        self._metrics.record_restart_required(bool(state.restart_required))
        if self._after_swap is not None:
            await self._after_swap(old, new)
        event(
            "config_reloaded",
            f"config reloaded ({trigger}): generation {state.generation}, "
            f"{len(new.routes.rules())} routes, sha256 {new.sha256[:12]}",
            trigger=trigger, generation=state.generation, config_sha256=new.sha256,
            routes=len(new.routes.rules()), routes_added=added, routes_removed=removed,
            routes_changed=changed,
        )
        if state.restart_required:
            event(
                "restart_required",
                "restart needed to apply: " + "; ".join(state.restart_required)
                + " (everything else is applied)",
                level=logging.WARNING, changes=list(state.restart_required),
            )
        return ReloadResult("success", state.generation, new.sha256,
                            restart_required=state.restart_required)

    def _rejected(
        self, tracked: TrackedFiles, problems: list[str], trigger: str, old: Runtime
    ) -> ReloadResult:
        state = self._state
        state.failed = tracked
        state.last_failure = tuple(problems)
        self._metrics.record_config_failed()
        event(
            "config_reload_failed",
            f"config reload rejected ({trigger}): {len(problems)} problem(s); still serving "
            f"generation {state.generation} (sha256 {old.sha256[:12]}): " + " | ".join(problems),
            level=logging.ERROR, trigger=trigger, problems=problems,
            generation=state.generation, config_sha256=old.sha256,
        )
        return ReloadResult("failure", state.generation, old.sha256, tuple(problems),
                            state.restart_required)


def _route_changes(old: Runtime, new: Runtime) -> tuple[list[str], list[str], list[str]]:
    """Names of the routes added, removed and changed by a reload."""
    before = {rule.name: route for rule, route in old.routes.entries()}
    after = {rule.name: route for rule, route in new.routes.entries()}
    return (
        sorted(after.keys() - before.keys()),
        sorted(before.keys() - after.keys()),
        sorted(name for name in before.keys() & after.keys() if before[name] != after[name]),
    )
