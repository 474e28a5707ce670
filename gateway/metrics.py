"""Every Prometheus metric of the gateway, on a private registry, with typed record methods.

Labels come only from bounded sets: route names (or ``unmatched``), standard methods (or
``OTHER``), status codes, closed reason strings, results. Never paths, subjects or tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


def method_label(method: str) -> str:
    return method if method in _METHODS else "OTHER"


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, version: str = "") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gateway_requests", "Requests answered, by route, method and status code.",
            ["route", "method", "code"], registry=r,
        )
        self.request_duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from request start until the response is complete (streams included).",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.upstream_response = Histogram(
            "gateway_upstream_response_seconds",
            "Time until the upstream's response headers arrived (time to first byte).",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight", "Requests being handled now.", registry=r
        )
        self.auth_decisions = Counter(
            "gateway_auth_decisions", "Authorization decisions by route, result and reason.",
            ["route", "result", "reason"], registry=r,
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors", "Upstream failures by route and kind.",
            ["route", "reason"], registry=r,
        )
        self.revocation_lookups = Counter(
            "gateway_revocation_lookups", "Revocation checks by result.", ["result"], registry=r
        )
        self.revocation_store_errors = Counter(
            "gateway_revocation_store_errors", "Revocation store operations that failed.",
            registry=r,
        )
        self.revocation_entries = Gauge(
            "gateway_revocation_entries", "Revocation entries held in memory, by kind.",
            ["kind"], registry=r,
        )
        self.revocation_sync_lag = Gauge(
            "gateway_revocation_sync_lag_seconds",
            "Seconds since the in-memory revocation list was last proven current "
            "(heartbeat echo or full sync).", registry=r,
        )
        self.revocation_propagation = Histogram(
            "gateway_revocation_propagation_seconds",
            "Delay from a revocation change being written to its arrival in this instance.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.revocation_gaps = Counter(
            "gateway_revocation_gaps", "Times the revocation feed may have missed changes, "
            "by cause.", ["cause"], registry=r,
        )
        self.revocation_resyncs = Counter(
            "gateway_revocation_resyncs", "Full loads of the revocation list, by result.",
            ["result"], registry=r,
        )
        self.revocation_reseeds = Counter(
            "gateway_revocation_reseeds", "Times this instance re-seeded a Redis that lost "
            "the revocation list.", registry=r,
        )
        self.revocation_connected = Gauge(
            "gateway_revocation_connected",
            "1 while the revocation subscription is up and in sync, else 0.", registry=r,
        )
        self.config_reloads = Counter(
            "gateway_config_reloads", "Config loads by result.", ["result"], registry=r
        )
        self.config_info = Gauge(
            "gateway_config_info", "The active configuration (value 1).", ["hash"], registry=r
        )
        self.config_last_success = Gauge(
            "gateway_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config load.", registry=r,
        )
        self.config_generation = Gauge(
            "gateway_config_generation",
            "Successful config loads since the process started (1: the initial load).",
            registry=r,
        )
        self.config_restart_required = Gauge(
            "gateway_config_restart_required",
            "1 when the config file changes settings that only a restart applies (listeners).",
            registry=r,
        )
        self.build_info = Gauge(
            "gateway_build_info", "Gateway build (value 1).", ["version"], registry=r
        )
        self.build_info.labels(version=version or "unknown").set(1)
        # -- proxying (issue 5): pools, limits, WebSockets, client connections --
        self.upstream_ejections = Counter(
            "gateway_upstream_ejections", "Targets ejected after consecutive failures.",
            ["route", "target"], registry=r,
        )
        self.upstream_retries = Counter(
            "gateway_upstream_retries",
            "Retries after connect failures, by outcome (retried, budget_exhausted).",
            ["route", "result"], registry=r,
        )
        self.upstream_health_checks = Counter(
            "gateway_upstream_health_checks", "Active health checks by target and result.",
            ["route", "target", "result"], registry=r,
        )
        self.upstream_target_up = Gauge(
            "gateway_upstream_target_up", "Active health verdict of a target (1 up, 0 down).",
            ["route", "target"], registry=r,
        )
        self.request_rejections = Counter(
            "gateway_request_rejections",
            "Requests refused by a limit or protocol check, by route and reason.",
            ["route", "reason"], registry=r,
        )
        self.websocket_sessions = Gauge(
            "gateway_websocket_sessions", "WebSocket sessions being relayed now.", registry=r
        )
        self.websocket_messages = Counter(
            "gateway_websocket_messages", "WebSocket messages relayed, by route and direction.",
            ["route", "direction"], registry=r,
        )
        self.connections_dropped = Counter(
            "gateway_connections_dropped",
            "Client connections closed by the gateway, by reason (header_timeout, idle_accept).",
            ["reason"], registry=r,
        )
        self._config_hash: str | None = None
        self._revocation_lookup_children: dict[str, Counter] = {}
        self._init_key_metrics(r)

    def _init_key_metrics(self, r: CollectorRegistry) -> None:
        """Per-issuer key source and introspection metrics (issuer: a configured iss)."""
        self.jwks_refreshes = Counter(
            "gateway_jwks_refreshes",
            "JWKS and discovery fetches by issuer and result (success, timeout, unreachable, "
            "http_error, too_large, redirect, invalid).",
            ["issuer", "result"], registry=r,
        )
        self.jwks_fetch_duration = Histogram(
            "gateway_jwks_fetch_duration_seconds", "Duration of JWKS fetches by issuer.",
            ["issuer"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.jwks_keys = Gauge(
            "gateway_jwks_keys", "Usable keys from the issuer's last good JWKS.", ["issuer"],
            registry=r,
        )
        self.jwks_last_success = Gauge(
            "gateway_jwks_last_success_timestamp_seconds",
            "Unix time of the issuer's last successful JWKS fetch.", ["issuer"], registry=r,
        )
        self.jwks_unknown_kid = Counter(
            "gateway_jwks_unknown_kid",
            "Tokens with a kid not in the key set: refetch, or cooldown (no fetch).",
            ["issuer", "action"], registry=r,
        )
        self.introspections = Counter(
            "gateway_introspection_requests",
            "Calls to introspection endpoints by issuer and result (active, inactive, error).",
            ["issuer", "result"], registry=r,
        )
        self.introspection_duration = Histogram(
            "gateway_introspection_duration_seconds", "Duration of introspection calls.",
            ["issuer"], buckets=_LATENCY_BUCKETS, registry=r,
        )

    def record_request(self, route: str, method: str, code: int, seconds: float) -> None:
        self.requests.labels(route, method_label(method), str(code)).inc()
        self.request_duration.labels(route).observe(seconds)

    def record_upstream_response(self, route: str, seconds: float) -> None:
        self.upstream_response.labels(route).observe(seconds)

    def record_auth(self, route: str, result: str, reason: str) -> None:
        self.auth_decisions.labels(route, result, reason).inc()

    def record_upstream_error(self, route: str, reason: str) -> None:
        self.upstream_errors.labels(route, reason).inc()

    def record_revocation_lookup(self, result: str) -> None:
        # on every authenticated request: the labelled child is looked up once per result
        child = self._revocation_lookup_children.get(result)
        if child is None:
            child = self._revocation_lookup_children[result] = \
                self.revocation_lookups.labels(result)
        child.inc()
        if result == "error":
            self.revocation_store_errors.inc()

    def record_header_timeout(self, partial: bool) -> None:
        self.connections_dropped.labels("header_timeout" if partial else "idle_accept").inc()

    def record_rejection(self, route: str, reason: str) -> None:
        self.request_rejections.labels(route, reason).inc()

    def record_revocation_entries(self, counts: Mapping[str, int]) -> None:
        for kind, n in counts.items():
            self.revocation_entries.labels(kind).set(n)

    def watch_revocation_sync_lag(self, seconds: Callable[[], float]) -> None:
        self.revocation_sync_lag.set_function(seconds)

    def record_revocation_gap(self, cause: str) -> None:
        self.revocation_gaps.labels(cause).inc()

    def record_revocation_resync(self, result: str) -> None:
        self.revocation_resyncs.labels(result).inc()

    def record_config_loaded(self, sha256: str, when: float) -> None:
        self.config_reloads.labels("success").inc()
        if self._config_hash is not None:
            self.config_info.remove(self._config_hash)
        self._config_hash = sha256[:16]
        self.config_info.labels(self._config_hash).set(1)
        self.config_last_success.set(when)
        self.config_generation.inc()

    def record_restart_required(self, required: bool) -> None:
        self.config_restart_required.set(1 if required else 0)

    def record_config_failed(self) -> None:
        self.config_reloads.labels("failure").inc()

    def record_jwks_result(self, issuer: str, result: str) -> None:
        self.jwks_refreshes.labels(issuer, result).inc()

    def record_jwks_fetch(self, issuer: str, seconds: float) -> None:
        self.jwks_fetch_duration.labels(issuer).observe(seconds)

    def record_jwks_success(self, issuer: str, keys: int, when: float) -> None:
        self.jwks_keys.labels(issuer).set(keys)
        self.jwks_last_success.labels(issuer).set(when)

    def record_jwks_refetch(self, issuer: str, action: str) -> None:
        self.jwks_unknown_kid.labels(issuer, action).inc()

    def record_introspection(self, issuer: str, result: str, seconds: float) -> None:
        self.introspections.labels(issuer, result).inc()
        self.introspection_duration.labels(issuer).observe(seconds)

    def _issuer_metrics(self) -> tuple[Any, ...]:
        return (self.jwks_refreshes, self.jwks_fetch_duration, self.jwks_keys,
                self.jwks_last_success, self.jwks_unknown_kid, self.introspections,
                self.introspection_duration)

    def known_issuers(self) -> set[str]:
        """Issuers that have label sets in the per-issuer metrics."""
        return {labels[0] for m in self._issuer_metrics() for labels in list(m._metrics)}

    def forget_issuers(self, removed: Iterable[str]) -> None:
        """Drop the label sets of issuers no configuration uses any more."""
        _forget(self._issuer_metrics(), removed)

    def forget_routes(self, removed: Iterable[str]) -> None:
        """Drop the label sets of routes that no longer exist (after a reload)."""
        _forget((self.requests, self.request_duration, self.upstream_response,
                 self.auth_decisions, self.upstream_errors, self.upstream_ejections,
                 self.upstream_retries, self.upstream_health_checks, self.upstream_target_up,
                 self.request_rejections, self.websocket_messages), removed)


def _forget(metrics: Iterable[Any], removed: Iterable[str]) -> None:
    """Remove every label set whose first label (route or issuer) is in ``removed``."""
    gone = set(removed)  # once: ``removed`` may be a one-shot iterator
    for metric in metrics:
        for labels in list(metric._metrics):  # no public iterator over the children
            if labels[0] in gone:
                metric.remove(*labels)
