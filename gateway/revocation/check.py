"""The revocation step of the pipeline: store answer → TokenRevoked, or the outage policy."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from ..auth.principal import Principal
from ..errors import RevocationUnavailable, TokenRevoked
from ..metrics import GatewayMetrics
from .store import RevocationStore, StoreError

log = logging.getLogger("gateway.revocation")


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
            log.warning("revocation store unavailable: %s", exc)
            if self.on_unavailable == "deny":
                raise RevocationUnavailable(str(exc)) from None
            return
        self.metrics.record_revocation_lookup("revoked" if revoked else "not_revoked")
        if revoked:
            raise TokenRevoked(f"token jti={principal.token_id} sub={principal.subject} revoked")
