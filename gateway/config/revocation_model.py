"""Document model of the ``revocation`` section: the store (memory or Redis: one node,
Sentinel or Cluster), its timeouts and what happens when it is unavailable.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .spec_types import Duration, Spec, parse_url

_REDIS_NODE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):\d{1,5}$")


def _check_redis_node(value: str) -> str:
    if not _REDIS_NODE.match(value) or not 0 < int(value.rpartition(":")[2]) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 10.0.0.5:26379 or [::1]:7000")
    return value


def _check_redis_url(value: str) -> str:
    url = parse_url(value, ("redis", "rediss"),
                    "must be redis://[user:password@]host[:port][/db] or rediss://… (TLS)")
    db = url.path.strip("/")
    if db and not db.isdigit():
        raise ValueError("the path must be a database number, e.g. /0")
    return value


RedisNode = Annotated[str, AfterValidator(_check_redis_node)]
RedisUrl = Annotated[str, AfterValidator(_check_redis_url)]


class SentinelSpec(Spec):
    master: str = Field(min_length=1, description="the master name the sentinels monitor")
    nodes: list[RedisNode] = Field(min_length=1, description="sentinel HOST:PORT addresses")
    password: str | None = Field(
        None, description="password of the sentinels themselves (use ${ENV})"
    )


class ClusterSpec(Spec):
    nodes: list[RedisNode] = Field(
        min_length=1, description="some cluster nodes HOST:PORT; the rest are discovered"
    )


class RevocationSpec(Spec):
    store: Literal["memory", "redis"] = Field("memory", description="revocation store backend")
    on_unavailable: Literal["deny", "allow"] = Field(
        "deny", description="when the store fails: deny (503) or allow the request"
    )
    max_token_lifetime: Duration = Field(
        86400.0, gt=0, description="how long a jti entry without exp is kept"
    )
    redis_url: RedisUrl | None = Field(
        None, description="store: redis, one node: redis://[user:password@]host:port/db "
        "or rediss:// (TLS)",
    )
    sentinel: SentinelSpec | None = Field(None, description="store: redis through Sentinel")
    cluster: ClusterSpec | None = Field(None, description="store: redis on a Redis Cluster")
    username: str | None = Field(None, description="ACL user for sentinel/cluster data nodes")
    password: str | None = Field(
        None, description="password for sentinel/cluster data nodes (use ${ENV})"
    )
    tls: bool = Field(False, description="TLS to sentinel/cluster data nodes")
    key_prefix: str = Field(
        "gateway:revocation", pattern=r"^[A-Za-z0-9_:.\-]{1,64}$",
        description="Redis keys are {PREFIX}:entries, :expiry, :version, :epoch; "
        "channel {PREFIX}:events",
    )
    connect_timeout: Duration = Field(0.25, gt=0, le=30, description="Redis connect timeout")
    command_timeout: Duration = Field(0.25, gt=0, le=30, description="Redis command timeout")
    heartbeat_interval: Duration = Field(
        1.0, gt=0, le=60, description="subscription heartbeat and version check period"
    )
    max_staleness: Duration = Field(
        3.0, gt=0, le=600,
        description="the in-memory list counts as current this long after the last proof "
        "that the subscription is alive; then on_unavailable applies",
    )

    @model_validator(mode="after")
    def _one_redis_target(self) -> RevocationSpec:
        given = [k for k in ("redis_url", "sentinel", "cluster") if getattr(self, k) is not None]
        if self.store == "memory":
            if given:
                raise ValueError(f"{given[0]} needs store: redis")
            return self
        if len(given) != 1:
            raise ValueError("store: redis needs exactly one of redis_url, sentinel, cluster")
        if given[0] == "redis_url" and (self.username or self.password or self.tls):
            raise ValueError(
                "with redis_url, put the user and password in the URL and use rediss:// for TLS"
            )
        if self.max_staleness < self.heartbeat_interval:
            raise ValueError("max_staleness must be at least heartbeat_interval")
        return self
