"""What one request carries between the middlewares and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from .auth.principal import Principal
from .metrics import UNMATCHED
from .proxy.forward import Forwarder
from .proxy.options import Cors
from .runtime import Route, Runtime


@dataclass(slots=True)
class RequestState:
    request_id: tuple[str, str]          # (header name, value)
    runtime: Runtime                     # the ONE snapshot this request reads
    forwarder: Forwarder
    route: str = UNMATCHED
    principal: Principal | None = None
    auth_reason: str | None = None       # "ok", "none" or the refusal reason
    error_detail: str | None = None
    shadow: bool = False                 # refused on an enforce: false route, forwarded anyway
    matched: Route | None = None         # the route, once matched
    upstream_seconds: float | None = None  # from sending upstream to the end of the relay

    @property
    def cors(self) -> Cors | None:
        """The matched route's CORS settings (actual requests; refusals once matched too)."""
        return self.matched.proxy.cors if self.matched is not None else None


REQUEST_STATE = web.RequestKey("request_state", RequestState)
