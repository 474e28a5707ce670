"""``oauth2-gateway explain``: which route a request matches and why, and what would be decided.

It uses the gateway's own compiled route table, token verifier and route policies, in the
pipeline's order (route → token → revocation → requirements), without any network I/O. The
revocation list lives in the running gateway, so it is not consulted here. Nothing printed
contains the token itself, a key or an expanded secret: a token is described by its claims.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from yarl import URL

from .auth.principal import Principal
from .errors import GatewayError, InsufficientScope, MissingToken
from .lint import path_matches, requirements
from .proxy.targets import upstream_url
from .routing import MatchRule, normalize_path
from .runtime import Route, Runtime


@dataclass(frozen=True, slots=True)
class Check:
    name: str      # token | revocation | requirements | auth
    outcome: str   # ok | failed | assumed | skipped | unchecked
    detail: str


@dataclass(slots=True)
class Explanation:
    method: str
    target: str
    host: str | None
    path: str | None = None               # canonical path
    route: str | None = None
    matched_by: str | None = None
    candidates: list[str] = field(default_factory=list)
    forwards_to: str | None = None
    requires: str | None = None
    enforce: bool | None = None
    checks: list[Check] = field(default_factory=list)
    decision: str = "deny"                # allow | deny | shadow_deny
    status: int | None = None             # the refusal's status (None: forwarded)
    reason: str = ""
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"request      {self.method} {self.target} (host: {self.host or 'none'})"]
        if self.path is not None:
            out.append(f"path         {self.path} (canonical)")
        if self.route is not None:
            out.append(f"route        {self.route}")
            out.append(f"  matched    {self.matched_by}")
        for candidate in self.candidates:
            out.append(f"  other      {candidate}")
        if self.forwards_to is not None:
            out.append(f"  forwards   {self.forwards_to}")
        if self.requires is not None:
            out.append(f"requires     {self.requires}")
        for check in self.checks:
            out.append(f"{check.name:<12} {check.outcome:<9} {check.detail}")
        out.append(f"decision     {self._verdict()}")
        return out

    def _verdict(self) -> str:
        if self.decision == "allow":
            return f"allow ({self.reason}): forwarded upstream"
        refusal = f"{self.status} {self.reason}" + (f" ({self.detail})" if self.detail else "")
        if self.decision == "shadow_deny":
            return f"shadow_deny: would be {refusal}; forwarded anyway (enforce: false)"
        return f"deny: {refusal}"


def split_url(url: str) -> tuple[str, str | None]:
    """(request target, Host header) from ``http://host[:port]/path?query`` or ``/path?query``."""
    if url.startswith(("http://", "https://")):
        parsed = URL(url, encoded=True)
        authority = parsed.raw_authority
        target = parsed.raw_path or "/"
        if parsed.raw_query_string:
            target += "?" + parsed.raw_query_string
        return target, authority or None
    return url, None


def _describe_rule(rule: MatchRule) -> str:
    kind = "path prefix" if rule.prefix else "exact path"
    boundary = " (on a segment boundary)" if rule.prefix else ""
    host = f"host {rule.host}" if rule.host else "any host"
    methods = "methods " + " ".join(sorted(rule.methods)) if rule.methods else "any method"
    return f"{kind} {rule.path}{boundary}, {host}, {methods}"


def _describe_principal(principal: Principal, now: float) -> str:
    scopes = " ".join(sorted(principal.scopes)) or "none"
    parts = [f"issuer {principal.issuer}", f"subject {principal.subject or '-'}",
             f"client_id {principal.client_id or '-'}", f"scopes {scopes}"]
    if principal.token_id:
        parts.append(f"jti {principal.token_id}")
    parts.append(f"expires in {int(principal.expires_at - now)}s")
    return ", ".join(parts)


def _candidates(runtime: Runtime, chosen: Route | None, method: str, host: str | None,
                path: str) -> list[str]:
    out = []
    for rule, route in runtime.routes.entries():
        if route is chosen or not path_matches(rule, host, path):
            continue
        if rule.methods is not None and method not in rule.methods:
            out.append(f"{route.name}: path matches; method {method} is not one of "
                       + " ".join(sorted(rule.methods)))
        elif chosen is not None:
            out.append(f"{route.name}: matches too, but {chosen.name} is more specific "
                       f"({_describe_rule(rule)})")
        else:
            out.append(f"{route.name}: matches ({_describe_rule(rule)})")
    return out


async def explain(
    runtime: Runtime, method: str, url: str, *, token: str | None = None,
    scopes: str | None = None, host: str | None = None, now: float | None = None,
) -> Explanation:
    """What the gateway would do with this request (revocation aside)."""
    now = time.time() if now is None else now
    target, url_host = split_url(url)
    host = host or url_host
    result = Explanation(method=method, target=target, host=host)
    try:
        result.path = normalize_path(target.partition("?")[0], allow_encoded_slash=True)
    except GatewayError:
        result.path = None
    try:
        match = runtime.routes.match(method, host, target)
    except GatewayError as err:
        if result.path is not None:
            result.candidates = _candidates(runtime, None, method, host, result.path)
        result.status, result.reason, result.detail = err.status, err.reason, err.detail
        return result
    route = match.route
    result.path = match.path
    result.route, result.matched_by = route.name, _describe_rule(match.rule)
    result.candidates = _candidates(runtime, route, method, host, match.path)
    path = route.proxy.rewrite.apply(match.path)
    result.forwards_to = ", ".join(
        str(upstream_url(target, path, match.query)) for target in route.targets
    )
    result.requires, result.enforce = requirements(route), route.enforce
    if not route.requires_auth:
        result.checks.append(Check("auth", "skipped", "auth: none: no token, revocation or "
                                                      "scope check"))
        result.decision, result.reason = "allow", "none"
        return result
    principal, failure = _authenticate(runtime, result, token, scopes, now)
    if principal is not None:
        failure = _check_requirements(route, principal, result)
    else:
        result.checks.append(Check("requirements", "skipped", "the token was not accepted"))
    if failure is None:
        result.decision, result.reason = "allow", "ok"
    else:
        result.decision = "deny" if route.enforce else "shadow_deny"
        result.status, result.reason, result.detail = failure.status, failure.reason, \
            failure.detail
    return result


def _authenticate(
    runtime: Runtime, result: Explanation, token: str | None, scopes: str | None, now: float
) -> tuple[Principal | None, GatewayError | None]:
    """The token and revocation checks: the accepted principal, or the refusal."""
    principal: Principal | None = None
    if token is not None:
        try:
            principal = runtime.verifier.verify(token)
        except GatewayError as err:
            result.checks.append(Check("token", "failed", f"{err.reason}: {err.detail}"))
            return None, err
        result.checks.append(Check("token", "ok", _describe_principal(principal, now)))
    elif scopes is not None:
        principal = Principal(
            issuer=runtime.default_issuer or "-", subject=None, client_id=None,
            scopes=frozenset(scopes.split()), token_id=None, issued_at=None,
            expires_at=float("inf"),
        )
        result.checks.append(Check(
            "token", "assumed",
            f"a valid token with scopes {' '.join(sorted(principal.scopes)) or 'none'} "
            "(--scopes: signature, issuer, audience and expiry are not checked)",
        ))
    else:
        missing = MissingToken("no bearer token (give --token or --scopes)")
        result.checks.append(Check("token", "failed", f"{missing.reason}: {missing.detail}"))
        return None, missing
    if runtime.revocation is None:
        result.checks.append(Check("revocation", "skipped", "no revocation section"))
    else:
        result.checks.append(Check(
            "revocation", "unchecked",
            "the revocation list lives in the running gateway (see `oauth2-gateway "
            "revocations`); a revoked token gets 401 revoked before the requirements",
        ))
    return principal, None


def _check_requirements(
    route: Route, principal: Principal, result: Explanation
) -> GatewayError | None:
    try:
        route.policy.check(principal)
    except InsufficientScope as err:
        result.checks.append(Check("requirements", "failed", f"{err.reason}: {err.detail}"))
        return err
    needed = sorted(route.policy.all_of | route.policy.any_of)
    has = sorted(principal.scopes.intersection(needed))
    detail = f"has {' '.join(has)}" if has else "no scope required"
    result.checks.append(Check("requirements", "ok", detail))
    return None

