"""IssuerSpec → Issuer: key files, secrets, remote key sources, introspection, claim rules.

Remote key sources and introspectors come from the ``IdentityProviders`` factory owned by the
app, so compiling stays free of network I/O and an unchanged issuer keeps its warm cache across
reloads. Problems are reported with their location through ``add``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from yarl import URL

from ..auth.claims import parse_path
from ..auth.devkey import dev_public_entry
from ..auth.fetch import FetchLimits
from ..auth.introspect import IntrospectionSettings, Introspector
from ..auth.issuer import Issuer
from ..auth.jwks import JwksCache, JwksSettings
from ..auth.keys import HMAC_ALGORITHMS_SET, KeyEntry, KeyFileError, parse_key_file
from ..auth.providers import IdentityProviders
from .load import Loc
from .model import IssuerSpec

ReadFile = Callable[[Path], bytes]
AddProblem = Callable[[Loc, str], None]
_INSECURE = "http:// needs allow_insecure_http: true on this issuer (development only)"


def resolve(base_dir: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base_dir / path


def read_secret(
    file: str | None, env: str | None, base_dir: Path, read_file: ReadFile,
    environ: Mapping[str, str],
) -> bytes:
    """A secret from a file (trailing newline dropped) or an environment variable."""
    if file is not None:
        try:
            data = read_file(resolve(base_dir, file)).rstrip(b"\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read {file}: {exc.strerror or exc}") from None
        if not data:
            raise ValueError(f"{file} is empty")
        return data
    if env is not None:
        value = environ.get(env)
        if not value:
            raise ValueError(f"environment variable {env} is not set or empty")
        return value.encode()
    raise ValueError("no secret source given")


class IssuerCompiler:
    """Compiles the issuers of one document; one instance per compile."""

    def __init__(
        self, add: AddProblem, base_dir: Path, read_file: ReadFile,
        environ: Mapping[str, str], missing_dev_key_ok: bool, providers: IdentityProviders,
        cache_size: int,
    ) -> None:
        self.add = add
        self.base = base_dir
        self.read_file = read_file
        self.environ = environ
        self.missing_dev_key_ok = missing_dev_key_ok
        self.providers = providers
        self.cache_size = cache_size

    def compile(self, spec: IssuerSpec, loc: Loc) -> Issuer:
        keys = self._static_keys(spec, loc)
        algorithms = frozenset(spec.algorithms)
        for key in keys:
            if key.algorithms.isdisjoint(algorithms):
                self.add(
                    (*loc, "algorithms"),
                    f"key {key.kid or key.source} ({', '.join(sorted(key.algorithms))}) "
                    "fits none of the allowed algorithms",
                )
        kids = [k.kid for k in keys if k.kid is not None]
        duplicates = sorted({k for k in kids if kids.count(k) > 1})
        if duplicates:
            self.add((*loc, "keys"), f"duplicate kid {duplicates}")
        return Issuer.build(
            spec.issuer, tuple(spec.audiences), algorithms, spec.leeway, tuple(keys),
            remote=self._remote(spec, loc, algorithms),
            introspector=self._introspector(spec, loc),
            require_typ=spec.require_typ,
            required_claims=tuple(parse_path(p) for p in spec.required_claims),
            scope_claim=spec.scope_claim,
        )

    def _static_keys(self, spec: IssuerSpec, loc: Loc) -> list[KeyEntry]:
        keys: list[KeyEntry] = []
        for j, name in enumerate(spec.keys):
            try:
                keys.extend(parse_key_file(self.read_file(resolve(self.base, name)), name))
            except OSError as exc:
                self.add((*loc, "keys", j), f"cannot read {name}: {exc.strerror or exc}")
            except KeyFileError as exc:
                self.add((*loc, "keys", j), f"{name}: {exc}")
        if spec.dev_signing_key is not None:
            path = resolve(self.base, spec.dev_signing_key)
            try:
                keys.append(dev_public_entry(self.read_file(path), spec.dev_signing_key))
            except FileNotFoundError:
                if not self.missing_dev_key_ok:
                    self.add((*loc, "dev_signing_key"), f"{spec.dev_signing_key} does not exist")
            except (OSError, ValueError) as exc:
                self.add((*loc, "dev_signing_key"), f"{spec.dev_signing_key}: {exc}")
        if spec.secret_file is not None or spec.secret_env is not None:
            try:
                secret = read_secret(
                    spec.secret_file, spec.secret_env, self.base, self.read_file, self.environ
                )
                keys.append(KeyEntry(None, secret, HMAC_ALGORITHMS_SET, "secret"))
            except ValueError as exc:
                field = "secret_file" if spec.secret_file is not None else "secret_env"
                self.add((*loc, field), str(exc))
        return keys

    def _secure(self, url: str, spec: IssuerSpec, where: Loc, what: str) -> bool:
        scheme = URL(url).scheme
        if scheme == "https" or (scheme == "http" and spec.allow_insecure_http):
            return True
        self.add(where, f"{what} is {scheme}://: " + (
            _INSECURE if scheme == "http" else "must be https"))
        return False

    def _remote(
        self, spec: IssuerSpec, loc: Loc, algorithms: frozenset[str]
    ) -> JwksCache | None:
        if spec.jwks_uri is not None:
            if not self._secure(spec.jwks_uri, spec, (*loc, "jwks_uri"), "jwks_uri"):
                return None
        elif spec.discovery:
            url = URL(spec.issuer) if "://" in spec.issuer else None
            if url is None or url.scheme not in ("http", "https") or not url.host:
                self.add((*loc, "discovery"), "discovery needs the issuer to be an https URL")
                return None
            if not self._secure(spec.issuer, spec, (*loc, "discovery"), "the issuer URL"):
                return None
        else:
            return None
        j = spec.jwks
        settings = JwksSettings(
            issuer=spec.issuer,
            jwks_uri=spec.jwks_uri,
            algorithms=algorithms,
            limits=FetchLimits(
                timeout=j.timeout, connect_timeout=j.connect_timeout, max_bytes=j.max_bytes,
                allow_insecure_http=spec.allow_insecure_http,
            ),
            refresh_interval=j.refresh_interval,
            min_refresh_interval=j.min_refresh_interval,
            max_refresh_interval=j.max_refresh_interval,
            cooldown=j.cooldown,
            max_stale=j.max_stale,
        )
        return self.providers.jwks_cache(settings)

    def _introspector(self, spec: IssuerSpec, loc: Loc) -> Introspector | None:
        ispec = spec.introspection
        if ispec is None:
            return None
        where: Loc = (*loc, "introspection")
        ok = self._secure(ispec.endpoint, spec, (*where, "endpoint"), "the endpoint")
        try:
            secret = read_secret(
                ispec.secret_file, ispec.secret_env, self.base, self.read_file, self.environ
            ).decode()
        except (ValueError, UnicodeDecodeError) as exc:
            field = "secret_file" if ispec.secret_file is not None else "secret_env"
            self.add((*where, field), str(exc))
            return None
        if not ok:
            return None
        return self.providers.introspector(IntrospectionSettings(
            issuer=spec.issuer,
            endpoint=ispec.endpoint,
            client_id=ispec.client_id,
            client_secret=secret,
            auth_method=ispec.auth_method,
            cache_ttl=ispec.cache_ttl,
            inactive_ttl=ispec.inactive_ttl,
            cache_size=self.cache_size,
            limits=FetchLimits(
                timeout=ispec.timeout, connect_timeout=ispec.connect_timeout,
                max_bytes=ispec.max_bytes, allow_insecure_http=spec.allow_insecure_http,
            ),
        ))
