"""The Redis store through Sentinel (one master, one replica, three sentinels) and on a
three-master Cluster: shared revocations, other writers, a Sentinel failover."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.fixtures.gateway import GatewayFactory, RunningGateway
from tests.fixtures.keys import KeyPair
from tests.fixtures.redis import ClusterSetup, SentinelSetup, eventually
from tests.fixtures.tokens import ISSUER, TokenFactory
from tests.fixtures.upstream import Upstream
from tests.integration.test_revocation import admin
from tests.integration.test_revocation_redis import redis_config, store_of, until_status

pytestmark = pytest.mark.integration


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_sentinel_instances_share_revocations_and_survive_a_failover(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_sentinel: SentinelSetup, http: aiohttp.ClientSession,
    make_token: TokenFactory,
) -> None:
    config = redis_config(
        tmp_path, upstream, rsa_key, ec_key, key_prefix="sentinel-test",
        sentinel={"master": redis_sentinel.name, "nodes": redis_sentinel.nodes},
        max_staleness="3s",
    )
    a, b = await start_gateway(config), await start_gateway(config)
    first, second = make_token(jti="before-failover"), make_token(jti="after-failover")
    await admin(http, a, "POST", json={"jti": "before-failover"})
    await until_status(http, b, first, 401, timeout=1.0)
    assert store_of(a).describe()["mode"] == "sentinel"

    with redis_sentinel.sentinels[0].client() as s:
        s.execute_command("SENTINEL", "FAILOVER", redis_sentinel.name)

    def promoted() -> bool:
        with redis_sentinel.replica.client() as r:
            return r.info("replication")["role"] == "master"

    await eventually(promoted, timeout=15, what="the replica to be promoted")

    async def written() -> bool:
        async with http.post(a.admin_url + "/admin/revocations",
                             json={"jti": "after-failover"},
                             headers={"Authorization": "Bearer test-admin-token-not-a-secret"},
                             ) as resp:
            return resp.status == 201

    deadline = time.monotonic() + 15
    while not await written():  # 503 until the clients have found the new master
        assert time.monotonic() < deadline, "no write after the failover"
    for gw in (a, b):
        await until_status(http, gw, first, 401, timeout=10)
        await until_status(http, gw, second, 401, timeout=10)

    def both_in_redis() -> bool:
        # a write taken by the old master just before it was demoted is lost by Redis; the
        # instances notice that the version went back and write what they hold again
        with redis_sentinel.replica.client() as r:
            return int(r.hlen("{sentinel-test}:entries")) == 2

    await eventually(both_in_redis, timeout=10, what="both revocations in the new master")


@pytest.fixture
def cluster_client(redis_cluster: ClusterSetup) -> RedisCluster:
    node = redis_cluster.nodes[0]
    return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", node.port)])


async def test_cluster_instances_share_revocations_and_obey_other_writers(
    start_gateway: GatewayFactory, tmp_path: Path, upstream: Upstream, rsa_key: KeyPair,
    ec_key: KeyPair, redis_cluster: ClusterSetup, cluster_client: RedisCluster,
    http: aiohttp.ClientSession, make_token: TokenFactory,
) -> None:
    config = redis_config(tmp_path, upstream, rsa_key, ec_key, key_prefix="cluster-test",
                          cluster={"nodes": redis_cluster.addresses[:1]})
    gws: list[RunningGateway] = [await start_gateway(config) for _ in range(3)]
    token = make_token(jti="cluster-jti")
    started = time.monotonic()
    await admin(http, gws[0], "POST", json={"jti": "cluster-jti"})
    for gw in gws:
        await until_status(http, gw, token, 401, timeout=1.0)
    assert time.monotonic() - started < 0.5
    assert store_of(gws[1]).describe()["mode"] == "cluster"

    other = make_token(jti="cluster-other-tool")
    entry = {"kind": "jti", "issuer": ISSUER, "value": "cluster-other-tool",
             "expires_at": time.time() + 300}
    field = f"jti {ISSUER} cluster-other-tool"
    pipe = cluster_client.pipeline(transaction=True)  # one slot: {cluster-test}
    pipe.hset("{cluster-test}:entries", field, json.dumps(entry))
    pipe.zadd("{cluster-test}:expiry", {field: entry["expires_at"]})
    pipe.incr("{cluster-test}:version")
    version = pipe.execute()[-1]
    cluster_client.publish("{cluster-test}:events",
                           json.dumps({"op": "revoke", "v": version, "entry": entry}))
    for gw in gws:
        await until_status(http, gw, other, 401, timeout=1.0)
    keys_node = cluster_client.get_node_from_key("{cluster-test}:entries")
    assert keys_node is not None
    assert cluster_client.hlen("{cluster-test}:entries") == 2


def test_the_cluster_spreads_slots_over_three_masters(redis_cluster: ClusterSetup) -> None:
    with redis_cluster.nodes[0].client() as c:
        masters = [n for n in c.execute_command("CLUSTER", "NODES").decode().splitlines()
                   if "master" in n]
    assert len(masters) == 3
    owners = 0
    for node in redis_cluster.nodes:  # the keys' slot is served by exactly one master
        with node.client() as c:
            try:
                c.get("{cluster-test}:version")
                owners += 1
            except redis.ResponseError:  # MOVED (redis-py shows the slot and the owner)
                pass
    assert owners == 1
