import aiohttp
import pytest

pytestmark = pytest.mark.integration


async def test_good_token_reaches_upstream(gateway, upstream, make_token):
    async with aiohttp.ClientSession() as s, s.get(gateway.url + "/api/orders/7?x=1",
                     headers={"Authorization": "Bearer " + make_token()}) as r:
        assert r.status == 200
        body = await r.json()
    assert body["raw_path"] == "/api/orders/7?x=1"
    assert upstream.paths() == ["/api/orders/7?x=1"]
