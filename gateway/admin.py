"""The admin listener: /metrics, /healthz, /readyz, /status open; /admin/* behind a token.

The admin API writes revocations through the RevocationStore and triggers config reloads
(``POST /admin/reload``). Its token is read from the active config on every request, so a
reload rotates it.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client.aiohttp import make_aiohttp_handler

from . import __version__
from .auth.extract import extract_bearer
from .errors import InvalidRequest
from .metrics import GatewayMetrics
from .revocation.store import KINDS, Kind, Revocation, RevocationStore, StoreError
from .runtime import Runtime, RuntimeHolder

ADMIN_REALM = 'Bearer realm="admin"'
#: JSON field of the admin API → revocation kind.
KIND_FIELDS: dict[str, Kind] = {"jti": "jti", "sub": "sub", "client_id": "client"}


class ReloadOutcome(Protocol):
    @property
    def result(self) -> str: ...

    def as_json(self) -> dict[str, object]: ...


class AdminRequestError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _json_error(status: int, error: str, description: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description}, status=status, headers=headers
    )


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AdminRequestError(400, "invalid_request", f"{name} must be a unix time (number)")
    return float(value)


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > 512):
        raise AdminRequestError(400, "invalid_request", f"{name} must be a string")
    return value


def _subject_of(body: dict[str, Any], runtime: Runtime) -> tuple[Kind, str, str]:
    """(kind, issuer, value) named by a request body or query.

    ``{"kind": "issuer", "iss": I}`` names the issuer-wide cutoff (every token of I).
    """
    named = [f for f in KIND_FIELDS if body.get(f) not in (None, "")]
    issuer_wide = body.get("kind") == "issuer"
    if len(named) + issuer_wide != 1:
        raise AdminRequestError(
            400, "invalid_request",
            "give exactly one of: " + ", ".join(KIND_FIELDS) + ', or "kind": "issuer"',
        )
    field = named[0] if named else "iss"
    value = body.get(field)
    if not issuer_wide and (not isinstance(value, str) or len(value) > 1024):
        raise AdminRequestError(400, "invalid_request", f"{field} must be a string")
    named_issuer = body.get("iss")
    if named_issuer is not None and not isinstance(named_issuer, str):
        raise AdminRequestError(400, "invalid_request", "iss must be a string")
    issuer = named_issuer or runtime.default_issuer
    if issuer is None:
        raise AdminRequestError(
            400, "invalid_request", "iss is required when several issuers are configured"
        )
    if issuer not in runtime.verifier.issuers:
        raise AdminRequestError(400, "invalid_request", f"iss {issuer[:200]!r} is not configured")
    if issuer_wide:
        return "issuer", issuer, issuer
    return KIND_FIELDS[field], issuer, str(value)


def _store_state(store: RevocationStore) -> dict[str, Any]:
    """The store's own state (Redis: connection, sync, entries), when it reports one."""
    describe = getattr(store, "describe", None)
    return {"state": describe()} if callable(describe) else {}


def create_admin_app(
    holder: RuntimeHolder,
    metrics: GatewayMetrics,
    store: RevocationStore,
    is_ready: Callable[[], bool],
    clock: Callable[[], float] = time.time,
    *,
    reload: Callable[[str], Awaitable[ReloadOutcome]] | None = None,
    reload_status: Callable[[], Mapping[str, object]] | None = None,
) -> web.Application:
    started = clock()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/admin/"):
            return await handler(request)
        expected = holder.current.admin_token
        if expected is None:
            return _json_error(
                403, "access_denied",
                "admin API disabled: set admin.token_file or admin.token_env",
            )
        try:
            token = extract_bearer(request.headers)
        except InvalidRequest:
            token = None
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            return _json_error(401, "invalid_token", "admin token required",
                               **{hdrs.WWW_AUTHENTICATE: ADMIN_REALM})
        try:
            return await handler(request)
        except AdminRequestError as exc:
            return _json_error(exc.status, exc.error, exc.description)
        except StoreError as exc:
            metrics.revocation_store_errors.inc()
            return _json_error(503, "temporarily_unavailable", f"revocation store: {exc}")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if is_ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def status(request: web.Request) -> web.Response:
        runtime = holder.current
        return web.json_response({
            "version": __version__,
            "uptime_seconds": round(clock() - started, 3),
            "config": {
                "source": runtime.source, "sha256": runtime.sha256,
                **(reload_status() if reload_status is not None else {}),
            },
            "routes": len(runtime.routes.rules()),
            "issuers": sorted(runtime.verifier.issuers),
            "key_sources": {
                name: issuer.remote.status()
                for name, issuer in sorted(runtime.verifier.issuers.items())
                if issuer.remote is not None
            },
            "revocation": None if runtime.revocation is None else {
                "store": type(runtime.revocation.store).__name__,
                "on_unavailable": runtime.revocation.on_unavailable,
                **_store_state(runtime.revocation.store),
            },
        })

    async def reload_now(request: web.Request) -> web.Response:
        if reload is None:
            raise AdminRequestError(409, "reload_unavailable", "this listener cannot reload")
        outcome = await reload("admin API")
        status = 422 if outcome.result == "failure" else 200
        return web.json_response(outcome.as_json(), status=status)

    def _checker_enabled() -> Runtime:
        runtime = holder.current
        if runtime.revocation is None:
            raise AdminRequestError(
                409, "revocation_disabled", "the config has no revocation section"
            )
        return runtime

    async def _body(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise AdminRequestError(400, "invalid_request", "body must be JSON") from None
        if not isinstance(body, dict):
            raise AdminRequestError(400, "invalid_request", "body must be a JSON object")
        return body

    async def revoke(request: web.Request) -> web.Response:
        runtime = _checker_enabled()
        assert runtime.revocation is not None
        body = await _body(request)
        kind, issuer, value = _subject_of(body, runtime)
        now = clock()
        lifetime = runtime.revocation.max_token_lifetime
        before: float | None = None
        if kind == "jti":  # one token: kept until it expires
            exp = _number(body, "exp")
            expires_at = exp if exp is not None else now + lifetime
        else:  # a cutoff: kept until every token issued before it has expired
            before = _number(body, "before")
            before = now if before is None else before
            expires_at = before + lifetime
        entry = Revocation(kind, issuer, value, expires_at, before,
                           _optional_text(body, "reason"), _optional_text(body, "actor"), now)
        await store.revoke(entry)
        return web.json_response(entry.as_json(), status=201)

    async def unrevoke(request: web.Request) -> web.Response:
        runtime = _checker_enabled()
        body = dict(request.query) if request.query else await _body(request)
        kind, issuer, value = _subject_of(body, runtime)
        removed = await store.unrevoke(kind, issuer, value)
        if not removed:
            return _json_error(404, "not_found", "no such revocation")
        return web.json_response({"removed": True, "kind": kind, "iss": issuer, "value": value})

    async def listing(request: web.Request) -> web.Response:
        _checker_enabled()
        q = request.query
        kind = q.get("kind")
        if kind is not None and kind not in KINDS:
            raise AdminRequestError(400, "invalid_request", f"kind must be one of {list(KINDS)}")
        try:
            limit = min(max(int(q.get("limit", "100")), 1), 1000)
        except ValueError:
            raise AdminRequestError(400, "invalid_request", "limit must be a number") from None
        value = q.get("value")
        for field, field_kind in KIND_FIELDS.items():  # ?sub=alice is kind=sub&value=alice
            if q.get(field):
                if (kind not in (None, field_kind)) or value not in (None, q[field]):
                    raise AdminRequestError(400, "invalid_request",
                                            f"{field} contradicts kind or value")
                kind, value = field_kind, q[field]
        page = await store.list(
            kind=kind, issuer=q.get("iss"), value=value,
            limit=limit, cursor=q.get("cursor"),
        )
        return web.json_response({
            "entries": [e.as_json() for e in page.entries], "next_cursor": page.next_cursor,
        })

    app = web.Application(middlewares=[guard])
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/status", status)
    app.router.add_post("/admin/revocations", revoke)
    app.router.add_delete("/admin/revocations", unrevoke)
    app.router.add_get("/admin/revocations", listing)
    app.router.add_post("/admin/reload", reload_now)
    return app
