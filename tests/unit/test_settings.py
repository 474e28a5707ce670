"""Restart-only settings and how their changes are described."""

from __future__ import annotations

import pytest
import yaml

from gateway.config.load import parse_config
from gateway.settings import Settings, describe_changes, restart_changes

ROUTE = {"name": "s", "match": {"path": "/s"}, "upstream": "http://127.0.0.1:1", "auth": "none"}


def settings(**sections: object) -> Settings:
    text = yaml.safe_dump({**sections, "routes": [ROUTE]})
    return Settings.from_spec(parse_config(text, "gw.yaml", {}).spec)


def test_the_same_settings_need_no_restart() -> None:
    assert restart_changes(settings(), settings(access_log={"sample": 0.5})) == []


@pytest.mark.parametrize(("sections", "change"), [
    pytest.param({"server": {"listen": "127.0.0.1:8081"}},
                 "server.listen: 0.0.0.0:8080 → 127.0.0.1:8081", id="the public listener"),
    pytest.param({"admin": {"listen": "[::1]:9091"}},
                 "admin.listen: 127.0.0.1:9090 → [::1]:9091", id="the admin listener"),
    pytest.param({"demo_upstream": {"listen": "127.0.0.1:9001"}},
                 "demo_upstream.listen: none → 127.0.0.1:9001", id="the demo upstream"),
    pytest.param({"server": {"max_token_bytes": 65536}},
                 "server.max_token_bytes: listener header limit 32768 bytes → listener header "
                 "limit 65600 bytes", id="a token limit beyond the listener's header limit"),
    pytest.param({"revocation": {"store": "redis", "redis_url": "redis://:pw@10.0.0.5:6379/0"}},
                 'revocation.store: memory → redis {"key_prefix": "gateway:revocation", '
                 '"master": null, "mode": "single", "where": "redis://10.0.0.5:6379/0"} '
                 "tls=False (connect 0.25s, command 0.25s, heartbeat 1.0s, max_staleness 3.0s)",
                 id="the revocation store backend, without its password"),
])
def test_restart_only_changes_are_named_with_their_config_keys(
    sections: dict[str, object], change: str
) -> None:
    assert restart_changes(settings(), settings(**sections)) == [change]


def test_a_token_limit_within_the_header_limit_needs_no_restart() -> None:
    assert restart_changes(settings(), settings(server={"max_token_bytes": 16384})) == []


def test_describe_changes_compares_texts_of_both_sides() -> None:
    assert describe_changes({"a": "1", "b": "2"}, {"b": "3", "c": "4"}) == [
        "a: 1 → none", "b: 2 → 3", "c: none → 4"]
    assert settings().describe()["server.listen"] == "0.0.0.0:8080"


def test_revocation_policy_changes_reload_without_a_restart() -> None:
    before = settings(revocation={"store": "memory", "on_unavailable": "deny"})
    after = settings(revocation={"store": "memory", "on_unavailable": "allow",
                                 "max_token_lifetime": "1h"})
    assert restart_changes(before, after) == []
