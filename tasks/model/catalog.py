"""The catalog: which authentication implementations exist (contract §4).

Loaded from ``AUTHQ_CATALOG`` (YAML or JSON) or the file shipped in this package, and
validated on load so a bad catalog is a start-up error with a clear message, never a
job that fails later. ``authq catalog check FILE`` runs the same validation.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, model_validator

from tasks.errors import ConfigError
from tasks.model.templates import PLACEHOLDER as PLACEHOLDER  # (re-exported: the proxy names it here)
from tasks.model.templates import template_problems

AuthType = Literal[
    "oauth2_authorization_code",
    "oauth2_client_credentials",
    "basic",
    "token",
    "woocommerce_app",
    "oauth1",
    "oauth1_token",
    "oauth2_jwt_bearer",
]
OAUTH2_TYPES = ("oauth2_authorization_code", "oauth2_client_credentials", "oauth2_jwt_bearer")
OAUTH1_TYPES = ("oauth1", "oauth1_token")
SignatureMethod = Literal["HMAC-SHA1", "HMAC-SHA256"]
JwtAlg = Literal["RS256", "PS256", "ES256"]
# Variables that always hold credentials, whatever the catalog says (DOMAIN: "credentials are always secret").
ALWAYS_SECRET = {"client_secret", "password", "token", "consumer_secret", "access_token", "refresh_token",
                 "token_secret", "service_account"}
# What each type needs of the catalog entry (contract §4's table).
NEEDS_URLS = {
    "oauth2_authorization_code": ("authorize_url", "token_url"),
    "oauth2_client_credentials": ("token_url",),
    "oauth2_jwt_bearer": ("token_url",),
    "oauth1": ("request_token_url", "authorize_url", "access_token_url"),
}
NEEDS_VARIABLES = {
    "woocommerce_app": ("store_url",),
    "oauth1": ("consumer_key", "consumer_secret"),
    "oauth1_token": ("consumer_key", "consumer_secret", "token_id", "token_secret"),
    "oauth2_jwt_bearer": ("service_account",),
}


def authority_variables(template: str) -> set[str]:
    """The variables that decide where ``template`` points: its scheme, host or port.

    A placeholder that starts the template stands for a whole base URL (as the outbound
    guard fills it: ``{{store_url}}/wp-json/...``); otherwise the authority is what lies
    between ``://`` and the first ``/``, ``?`` or ``#``. A template with no ``://`` at all
    is not pinned anywhere: every variable in it counts."""
    first = PLACEHOLDER.match(template)
    if first:
        head, rest = {first.group(1)}, template[first.end():]
    else:
        scheme_end = template.find("://")
        if scheme_end < 0:
            return set(PLACEHOLDER.findall(template))
        head, rest = set(PLACEHOLDER.findall(template[:scheme_end])), template[scheme_end + 3:]
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return head | set(PLACEHOLDER.findall(rest[:min(ends, default=len(rest))]))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CatalogVariable(_Strict):
    key: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=255)
    label: str | None = None
    alias: str | None = None
    secret: bool = False
    required: bool = False
    configurable: bool = False
    advanced: bool = False
    locked: bool = False
    default: str | None = None

    @property
    def is_secret(self) -> bool:
        return self.secret or self.key in ALWAYS_SECRET


class Defaults(_Strict):
    """Connector settings an implementation suggests (contract §4 ``defaults``), as the provider
    documents them: e.g. its rate limit, for the connect page (§11) to offer."""

    timezone: str | None = None
    date_format: str | None = Field(default=None, min_length=1, max_length=64)
    rate_limit_unit: Literal["second", "minute", "hour", "day"] | None = None
    rate_limit_duration: int | None = Field(default=None, ge=1)


class Check(_Strict):
    method: Literal["GET", "POST", "HEAD"] = "GET"
    url: str


class Implementation(_Strict):
    id: str = Field(min_length=1, max_length=255)
    system: str
    type: AuthType
    authorize_url: str | None = None
    token_url: str | None = None
    scopes: list[str] = []
    pkce: bool = True
    token_auth: Literal["client_secret_basic", "client_secret_post", "tls_client_auth",
                        "private_key_jwt"] = "client_secret_basic"
    # private_key_jwt (RFC 7523 §2.2): the assertion's algorithm, and the variable holding its kid
    # (else the certificate's SHA-256 fingerprint).
    jwt_alg: JwtAlg = "RS256"
    jwt_kid_variable: str | None = None
    # OAuth 1.0a (RFC 5849): the temporary-credential and token endpoints of the three-legged flow,
    # the signature method (HMAC-SHA1 for oauth1, HMAC-SHA256 for oauth1_token when not given) and
    # the realm of the Authorization header (a template: NetSuite's is the account id).
    request_token_url: str | None = None
    access_token_url: str | None = None
    signature_method: SignatureMethod | None = None
    realm: str | None = None
    issuer: str | None = None
    check: Check | None = None
    variables: list[CatalogVariable] = []
    username_variable: str = "username"
    password_variable: str = "password"
    token_variable: str = "token"
    token_header: str | None = None
    # The provider's API root the proxy sends the platform's requests under (contract §9): a
    # template like the other URLs (``https://{{shop}}.myshopify.com/admin/api/2025-10``).
    base_url: str | None = None
    defaults: Defaults | None = None
    # oauth2_client_credentials: a variable holding a refresh token the provider issued outside any
    # flow authq runs (Amazon SP-API's self-authorisation): the token request trades it
    # (grant_type=refresh_token) instead of asking for client credentials.
    refresh_token_variable: str | None = None
    # WooCommerce app auth: the permission asked of the store owner.
    scope: Literal["read", "write", "read_write"] = "read_write"

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Implementation:
        if info.context and info.context.get("fields_only"):
            return self  # authq catalog check asks for problems() itself, each with its path
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(f"{where}: {message}" for where, message in problems))
        return self

    def problems(self) -> list[tuple[str, str]]:
        """Every inconsistency of the entry, as (its field, what is wrong): all of them, so that
        ``authq catalog check`` reports them in one run."""
        found: list[tuple[str, str]] = []
        keys = [v.key for v in self.variables]
        dupes = {k for k in keys if keys.count(k) > 1}
        if dupes:
            found.append(("variables", f"variables repeat the key(s) {sorted(dupes)}"))
        for attr in NEEDS_URLS.get(self.type, ()):
            if not getattr(self, attr):
                found.append((attr, f"type {self.type} needs {attr}"))
        for key in NEEDS_VARIABLES.get(self.type, ()):
            if key not in keys:
                found.append(("variables", f"type {self.type} needs a {key} variable"))
        if self.token_auth == "private_key_jwt" and self.type not in OAUTH2_TYPES[:2]:
            found.append(("token_auth", f"private_key_jwt is a client authentication of OAuth 2 token requests; "
                                        f"type {self.type} makes none"))
        if self.refresh_token_variable and self.type != "oauth2_client_credentials":
            found.append(("refresh_token_variable", "only oauth2_client_credentials trades a given refresh token"))
        if self.refresh_token_variable and self.refresh_token_variable not in keys:
            found.append(("refresh_token_variable", f"no variable has the key {self.refresh_token_variable!r}"))
        if self.jwt_kid_variable and self.jwt_kid_variable not in keys:
            found.append(("jwt_kid_variable", f"no variable has the key {self.jwt_kid_variable!r}"))
        for where, text in self.templates().items():
            found.extend((where, problem) for problem in template_problems(text))
            for name in dict.fromkeys(PLACEHOLDER.findall(text)):
                if name not in keys:
                    found.append((where, f"uses {{{{{name}}}}} but no variable has that key"))
        return found

    def templates(self) -> dict[str, str]:
        """Every template of the entry: its URLs and the OAuth 1.0a realm."""
        return {**self.urls(), **({"realm": self.realm} if self.realm else {})}

    @property
    def oauth1_signature_method(self) -> SignatureMethod:
        return self.signature_method or ("HMAC-SHA256" if self.type == "oauth1_token" else "HMAC-SHA1")

    def urls(self) -> dict[str, str]:
        found = {"authorize_url": self.authorize_url, "token_url": self.token_url, "issuer": self.issuer,
                 "base_url": self.base_url, "request_token_url": self.request_token_url,
                 "access_token_url": self.access_token_url}
        if self.check:
            found["check.url"] = self.check.url
        return {k: v for k, v in found.items() if v}

    def variable(self, key: str) -> CatalogVariable | None:
        return next((v for v in self.variables if v.key == key), None)

    def authority_variables(self) -> set[str]:
        """The variables that decide which hosts (scheme, host, port) this implementation's URLs reach."""
        return set().union(*(authority_variables(url) for url in self.urls().values()))

    def credential_keys(self) -> tuple[str, ...]:
        if self.type == "basic":
            return (self.username_variable, self.password_variable)
        if self.type == "token":
            return (self.token_variable,)
        if self.type == "oauth1_token":
            return NEEDS_VARIABLES["oauth1_token"]
        return ()


class PlatformApp(_Strict):
    key: str
    implementation_id: str
    client_id: str
    client_secret_env: str | None = None


Loc = tuple[str | int, ...]


def loc_text(loc: Loc) -> str:
    """``("implementations", 3, "check", "url")`` → ``implementations[3].check.url``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top)"


def reference_problems(ids: list[str], app_implementations: list[str]) -> list[tuple[Loc, str]]:
    """Repeated implementation ids and platform apps naming none, as (where, problem)."""
    found: list[tuple[Loc, str]] = []
    for index, implementation_id in enumerate(ids):
        if implementation_id in ids[:index]:
            found.append((("implementations", index, "id"), f"the id {implementation_id!r} is used by an earlier "
                                                            "implementation"))
    for index, implementation_id in enumerate(app_implementations):
        if implementation_id not in ids:
            found.append((("platform_apps", index, "implementation_id"),
                          f"names unknown implementation {implementation_id!r}"))
    return found


class Catalog(_Strict):
    implementations: list[Implementation]
    platform_apps: list[PlatformApp] = []
    # By id, built on first use for the list it indexes: every proxied request and credentials read
    # looks its implementation up. (A copy with other implementations, ``model_copy(update=…)``,
    # has another list: its index is built again.)
    _indexed: tuple[list[Implementation], dict[str, Implementation]] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Catalog:
        if info.context and info.context.get("fields_only"):
            return self
        problems = reference_problems([i.id for i in self.implementations],
                                      [a.implementation_id for a in self.platform_apps])
        if problems:
            raise ValueError("; ".join(f"{loc_text(where)}: {message}" for where, message in problems))
        return self

    def implementation(self, implementation_id: str) -> Implementation | None:
        indexed = self._indexed
        if indexed is None or indexed[0] is not self.implementations:
            # (reversed: the first of a repeated id wins, as a scan would find it)
            indexed = self._indexed = (self.implementations, {i.id: i for i in reversed(self.implementations)})
        return indexed[1].get(implementation_id)

    def platform_app(self, key: str) -> PlatformApp | None:
        return next((a for a in self.platform_apps if a.key == key), None)


def platform_app_problems(catalog: Catalog) -> list[str]:
    """Platform apps whose client secret a connector could send anywhere: the token URL of
    their implementation takes its scheme, host or port from a connector's variable, so any
    tenant could point it at a server of its own. ``authq catalog check`` refuses these."""
    problems = []
    for app in catalog.platform_apps:
        impl = catalog.implementation(app.implementation_id)
        chosen = sorted(authority_variables(impl.token_url)) if impl is not None and impl.token_url else []
        if chosen:
            problems.append(f"platform app {app.key!r}: the token URL of {app.implementation_id!r} takes its host "
                            f"from the variable(s) {chosen}; a connector could send the app's secret to any host. "
                            "Give the implementation a fixed token URL host.")
    return problems


def parse_catalog(text: str, source: str) -> Catalog:
    try:
        data = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if source.endswith(".json") else "YAML"
        raise ConfigError(f"catalog {source}: not valid {kind}: {exc}") from None
    try:
        return Catalog.model_validate(data)
    except ValidationError:
        from tasks.model.catalog_check import catalog_problems  # (it builds on this module)

        lines = [f"  {problem}" for problem in catalog_problems(text, source)]
        raise ConfigError(f"catalog {source} is invalid:\n" + "\n".join(lines)) from None


def load_catalog(path: Path | None) -> Catalog:
    """Load ``path``, or the catalog shipped with authq when ``path`` is None."""
    if path is None:
        text = resources.files("tasks.model").joinpath("catalog.yaml").read_text(encoding="utf-8")
        return parse_catalog(text, "(built-in catalog.yaml)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read catalog {path}: {exc.strerror}. Check the path (AUTHQ_CATALOG, or the "
                          "file given to `authq catalog check`).") from None
    return parse_catalog(text, str(path))
