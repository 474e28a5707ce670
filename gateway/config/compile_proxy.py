"""Route and server proxy settings: document → ``proxy.options`` objects.

Part of the compile step: pure except for reading the TLS files a route names (client
certificate, CA bundle), and every problem is reported with its location.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from collections.abc import Callable
from pathlib import Path

from ..errors import BadPath
from ..proxy.options import (
    Cors,
    HeaderEdits,
    HealthCheck,
    PassiveHealth,
    PathRewrite,
    Pool,
    ProxyOptions,
    RetryPolicy,
    ServerProxy,
    UpstreamTls,
)
from ..routing import normalize_path
from ..runtime import Upstream
from .issuers import resolve
from .load import Loc
from .model import RouteSpec, ServerSpec
from .proxy_model import CorsSpec, HeaderEditsSpec, UpstreamPoolSpec, UpstreamTlsSpec

Report = Callable[[Loc, str], None]
ReadFile = Callable[[Path], bytes]


def target_urls(spec: RouteSpec) -> list[str]:
    upstream = spec.upstream
    return [upstream] if isinstance(upstream, str) else list(upstream.targets)


def client_tls_context(
    ca_pem: bytes | None, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    """A verifying client context (TLS 1.2+): the system store or ``ca_pem``, plus an optional
    client certificate for mTLS."""
    if ca_pem is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # Only the configured bundle: a private CA does not widen to the system store.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies peer and host name
        context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        context.load_cert_chain(str(cert_file), str(key_file))
    return context


def _upstream_tls(
    spec: UpstreamTlsSpec, loc: Loc, report: Report, base_dir: Path, read_file: ReadFile
) -> UpstreamTls | None:
    digest = hashlib.sha256()
    ca_pem = None
    if spec.ca_file is not None:
        try:
            ca_pem = read_file(resolve(base_dir, spec.ca_file))
        except OSError as exc:
            report((*loc, "ca_file"), f"cannot read {spec.ca_file}: {exc.strerror or exc}")
            return None
        digest.update(ca_pem)
    cert = key = None
    if spec.cert_file is not None and spec.key_file is not None:
        cert, key = resolve(base_dir, spec.cert_file), resolve(base_dir, spec.key_file)
        for name, path in (("cert_file", cert), ("key_file", key)):
            try:
                digest.update(read_file(path))
            except OSError as exc:
                report((*loc, name), f"cannot read {path}: {exc.strerror or exc}")
                return None
    try:
        context = client_tls_context(ca_pem, cert, key)
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
        report(loc, f"unusable TLS files: {exc}")
        return None
    digest.update((spec.server_name or "").encode())
    return UpstreamTls(context, spec.server_name, digest.hexdigest())


def _pool(
    spec: RouteSpec, targets: tuple[Upstream, ...], loc: Loc, report: Report, base_dir: Path,
    read_file: ReadFile,
) -> Pool:
    upstream = spec.upstream
    if not isinstance(upstream, UpstreamPoolSpec):
        return Pool(targets)
    tls = None
    if upstream.tls is not None:
        tls = _upstream_tls(
            upstream.tls, (*loc, "upstream", "tls"), report, base_dir, read_file
        )
    check = upstream.health_check
    check_path, check_query = "/", ""
    if check is not None:
        raw_path, _, check_query = check.path.partition("?")
        try:
            check_path = normalize_path(raw_path)
        except BadPath as exc:
            report((*loc, "upstream", "health_check", "path"), f"not a usable path: {exc.detail}")
    retries = upstream.retries
    return Pool(
        targets=targets,
        balance=upstream.balance,
        passive=PassiveHealth(
            upstream.passive_health.max_failures, upstream.passive_health.ejection_time
        ),
        check=None if check is None else HealthCheck(
            check_path, check.interval, check.timeout, check.healthy_threshold,
            check.unhealthy_threshold, check_query,
        ),
        retries=RetryPolicy(retries.attempts, retries.budget, retries.min_per_second),
        tls=tls,
    )


def _edits(spec: HeaderEditsSpec, loc: Loc, report: Report, protected: frozenset[str]) -> (
    HeaderEdits
):
    for key in ("set", "add"):
        for name in getattr(spec, key):
            if name.lower().replace("_", "-") in protected:
                report((*loc, key, name), f"{name} carries the verified identity: "
                       "it is set by the gateway only")
    return HeaderEdits(
        remove=frozenset(n.lower() for n in spec.remove),
        set=tuple(spec.set.items()),
        add=tuple(spec.add.items()),
    )


def _cors(spec: CorsSpec) -> Cors:
    any_origin = spec.allow_origins == ["*"]
    return Cors(
        any_origin=any_origin,
        origins=frozenset() if any_origin else frozenset(spec.allow_origins),
        methods=frozenset(spec.allow_methods),
        allow_headers=frozenset(h.lower() for h in spec.allow_headers),
        methods_value=", ".join(spec.allow_methods),
        headers_value=", ".join(spec.allow_headers),
        expose_value=", ".join(spec.expose_headers),
        max_age=str(int(spec.max_age)),
        credentials=spec.allow_credentials,
    )


def _rewrite(spec: RouteSpec, rule_path: str, loc: Loc, report: Report) -> PathRewrite:
    if spec.rewrite_prefix is not None:
        try:
            prefix = normalize_path(spec.rewrite_prefix)
        except BadPath as exc:
            report((*loc, "rewrite_prefix"), f"not a usable path: {exc.detail}")
            return PathRewrite()
        return PathRewrite(strip=rule_path.rstrip("/"), prefix=prefix)
    if spec.strip_prefix is True:
        return PathRewrite(strip=rule_path.rstrip("/"))
    if isinstance(spec.strip_prefix, str):
        try:
            strip = normalize_path(spec.strip_prefix).rstrip("/")
        except BadPath as exc:
            report((*loc, "strip_prefix"), f"not a usable path: {exc.detail}")
            return PathRewrite()
        if not (rule_path == strip or rule_path.startswith(strip + "/")):
            report((*loc, "strip_prefix"),
                   f"{spec.strip_prefix!r} is not a leading part of the route's path {rule_path!r}")
        return PathRewrite(strip=strip)
    return PathRewrite()


def compile_route_proxy(
    spec: RouteSpec,
    *,
    rule_path: str,
    targets: tuple[Upstream, ...],
    loc: Loc,
    report: Report,
    server: ServerSpec,
    identity_names: frozenset[str],
    base_dir: Path,
    read_file: ReadFile,
) -> ProxyOptions:
    pool = _pool(spec, targets, loc, report, base_dir, read_file)
    body_limit = server.max_body_size if spec.max_body_size is None else spec.max_body_size
    return ProxyOptions(
        pool=pool,
        connect_timeout=min(spec.connect_timeout, spec.timeout),
        idle_timeout=spec.idle_timeout,
        max_connections=spec.max_connections,
        max_concurrent=spec.max_concurrent_requests,
        max_body_size=body_limit,
        rewrite=_rewrite(spec, rule_path, loc, report),
        preserve_host=spec.preserve_host,
        host_header=spec.host_header,
        forward_token=spec.forward_token,
        request_edits=_edits(
            spec.request_headers, (*loc, "request_headers"), report, identity_names
        ),
        response_edits=_edits(spec.response_headers, (*loc, "response_headers"), report,
                              frozenset()),
        cors=None if spec.cors is None else _cors(spec.cors),
        websocket=spec.websocket.enabled,
        ws_max_message=spec.websocket.max_message_size,
    )


def compile_server_proxy(server: ServerSpec) -> ServerProxy:
    hsts = None
    if server.tls is not None and server.hsts is not None:
        hsts = f"max-age={int(server.hsts.max_age)}"
        if server.hsts.include_subdomains:
            hsts += "; includeSubDomains"
        if server.hsts.preload:
            hsts += "; preload"
    return ServerProxy(
        trusted_proxies=tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in server.trusted_proxies
        ),
        hsts=hsts,
    )
