"""HTTPS on the public listener: the server TLS context, its certificate reload, and the
plain-HTTP listener that only redirects to HTTPS.

The context is created once per process; ``reload_certificate`` loads a new chain into the
same context, so new handshakes use it while established connections keep theirs (nothing is
dropped). A chain that does not load (missing file, key not matching) is refused before the
live context is touched.
"""

from __future__ import annotations

import re
import ssl

from aiohttp import hdrs, web

from .routing import canonical_host
from .settings import TlsListener

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_HOST = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_.\-]*[a-z0-9_])?|\[[0-9a-f:.]+\])$")


def server_context(tls: TlsListener) -> ssl.SSLContext:
    """TLS 1.2+ (or 1.3+), HTTP/1.1 over ALPN, the configured certificate chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return context


def reload_certificate(context: ssl.SSLContext, tls: TlsListener) -> None:
    """Put the chain now in the files into the live context. Raises OSError / ssl.SSLError
    (the live context unchanged) when the files do not make a valid chain."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    probe.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    context.load_cert_chain(str(tls.cert_file), str(tls.key_file))


def create_redirect_app(https_port: int) -> web.Application:
    """Every request → 308 to the same host, path and query over HTTPS."""
    suffix = "" if https_port == 443 else f":{https_port}"

    async def redirect(request: web.Request) -> web.Response:
        host = canonical_host(request.headers.get(hdrs.HOST))
        target = request.raw_path
        if not host or not _HOST.match(host) or not target.startswith("/"):
            return web.Response(status=400, text="a Host header and an origin-form target "
                                "are needed to redirect to HTTPS\n")
        return web.Response(
            status=308, headers={hdrs.LOCATION: f"https://{host}{suffix}{target}"},
            text="use HTTPS\n",
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    return app
