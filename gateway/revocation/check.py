"""The revocation step of the pipeline: store answer → TokenRevoked, or the outage policy."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from ..auth.principal import Principal
from ..errors import RevocationUnavailable, TokenRevoked
from ..metrics import GatewayMetrics
from .store import RevocationStore, StoreError

log = logging.getLogger("gateway.revocation")

#: During an outage every check fails: one warning per this many seconds, not one per request.
WARNING_INTERVAL = 1.0
_last_warning = [-WARNING_INTERVAL]  # monotonic time of the last "store unavailable" warning


@dataclass(frozen=True, slots=True)
class RevocationChecker:
    store: RevocationStore
    on_unavailable: Literal["deny", "allow"]
    max_token_lifetime: float
    metrics: GatewayMetrics

    async def check(self, principal: Principal) -> None:
        try:
            revoked = await self.store.is_revoked(principal)
        except (StoreError, OSError, TimeoutError) as exc:
            self.metrics.record_revocation_lookup("error")
            now = time.monotonic()
            if now - _last_warning[0] >= WARNING_INTERVAL:
                _last_warning[0] = now
                log.warning("revocation store unavailable: %s", exc)
            if self.on_unavailable == "deny":
                raise RevocationUnavailable(str(exc)) from None
            return
        self.metrics.record_revocation_lookup("revoked" if revoked else "not_revoked")
        if revoked:
            raise TokenRevoked(f"token jti={principal.token_id} sub={principal.subject} revoked")
