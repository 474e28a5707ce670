"""The revocation section for store: redis: validation, and what /status may show of it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config.model import RevocationSpec
from gateway.revocation.redis_target import RedisSettings


def spec(**section: Any) -> RevocationSpec:
    return RevocationSpec.model_validate({"store": "redis", **section})


def test_defaults_are_the_documented_ones() -> None:
    settings = RedisSettings.from_spec(spec(redis_url="redis://127.0.0.1:6379/0"))
    assert (settings.mode, settings.connect_timeout, settings.command_timeout) == (
        "single", 0.25, 0.25)
    assert (settings.heartbeat_interval, settings.max_staleness) == (1.0, 3.0)
    assert settings.keys.entries == "{gateway:revocation}:entries"
    assert settings.deadline == pytest.approx(1.05)


def test_sentinel_and_cluster_nodes_are_parsed() -> None:
    sentinel = RedisSettings.from_spec(spec(
        sentinel={"master": "m", "nodes": ["10.0.0.1:26379", "[::1]:26380"]}, password="pw"))
    assert (sentinel.mode, sentinel.master, sentinel.nodes) == (
        "sentinel", "m", (("10.0.0.1", 26379), ("::1", 26380)))
    cluster = RedisSettings.from_spec(spec(cluster={"nodes": ["redis-0:7000"]}, tls=True))
    assert (cluster.mode, cluster.nodes, cluster.tls) == ("cluster", (("redis-0", 7000),), True)
    assert cluster.describe()["where"] == ["redis-0:7000"]


def test_credentials_never_appear_in_the_description() -> None:
    settings = RedisSettings.from_spec(spec(redis_url="rediss://gw:s3cret@redis:6380/2"))
    assert "s3cret" not in str(settings.describe())
    assert settings.describe()["where"] == "rediss://redis:6380/2"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        pytest.param({}, "exactly one of redis_url, sentinel, cluster", id="no target"),
        pytest.param({"redis_url": "redis://a:1", "cluster": {"nodes": ["a:1"]}},
                     "exactly one of", id="two targets"),
        pytest.param({"redis_url": "http://a:1"}, "must be redis://", id="an http URL"),
        pytest.param({"redis_url": "redis://a:1/x"}, "database number", id="a named db"),
        pytest.param({"cluster": {"nodes": ["a"]}}, "HOST:PORT", id="a node without port"),
        pytest.param({"cluster": {"nodes": []}}, "at least 1", id="no cluster nodes"),
        pytest.param({"redis_url": "redis://a:1", "password": "x"}, "put the user and password",
                     id="a password beside redis_url"),
        pytest.param({"redis_url": "redis://a:1", "key_prefix": "a b"}, "pattern",
                     id="a prefix with a space"),
        pytest.param({"redis_url": "redis://a:1", "heartbeat_interval": "5s"},
                     "max_staleness must be at least", id="staleness below the heartbeat"),
        pytest.param({"redis_url": "redis://a:1", "command_timeout": "0s"}, "greater than 0",
                     id="a zero timeout"),
    ],
)
def test_bad_redis_sections_are_refused(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**section)


def test_redis_keys_need_store_redis() -> None:
    with pytest.raises(ValidationError, match="redis_url needs store: redis"):
        RevocationSpec.model_validate({"redis_url": "redis://a:1"})
