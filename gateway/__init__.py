"""oauth2-gateway: an OAuth2 API gateway (aiohttp reverse proxy with JWT validation)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
