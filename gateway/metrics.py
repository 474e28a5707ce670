"""Every Prometheus metric of the gateway, on a private registry, with typed record methods.

Labels come only from bounded sets: route names (or ``unmatched``), standard methods (or
``OTHER``), status codes, closed reason strings, results. Never paths, subjects or tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

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
        self.build_info = Gauge(
            "gateway_build_info", "Gateway build (value 1).", ["version"], registry=r
        )
        self.build_info.labels(version=version or "unknown").set(1)
        self._config_hash: str | None = None
        self._revocation_lookup_children: dict[str, Counter] = {}

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

    def record_config_failed(self) -> None:
        self.config_reloads.labels("failure").inc()

    def forget_routes(self, removed: Iterable[str]) -> None:
        """Drop the label sets of routes that no longer exist (after a reload)."""
        gone = set(removed)  # once: ``removed`` may be a one-shot iterator
        for metric in (self.requests, self.request_duration, self.upstream_response,
                       self.auth_decisions, self.upstream_errors):
            for labels in list(metric._metrics):  # no public iterator over the children
                if labels[0] in gone:
                    metric.remove(*labels)
