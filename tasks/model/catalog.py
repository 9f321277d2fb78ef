"""The catalog: which authentication implementations exist (contract §4).

Loaded from ``AUTHQ_CATALOG`` (YAML or JSON) or the file shipped in this package, and
validated on load so a bad catalog is a start-up error with a clear message, never a
job that fails later. ``authq catalog check FILE`` runs the same validation.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tasks.errors import ConfigError
from tasks.validation.field_errors import errors_of

AuthType = Literal[
    "oauth2_authorization_code",
    "oauth2_client_credentials",
    "basic",
    "token",
    "woocommerce_app",
]
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
# Variables that always hold credentials, whatever the catalog says (DOMAIN: "credentials are always secret").
ALWAYS_SECRET = {"client_secret", "password", "token", "consumer_secret", "access_token", "refresh_token"}


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
    token_auth: Literal["client_secret_basic", "client_secret_post", "tls_client_auth"] = "client_secret_basic"
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
    # WooCommerce app auth: the permission asked of the store owner.
    scope: Literal["read", "write", "read_write"] = "read_write"

    @model_validator(mode="after")
    def _consistent(self) -> Implementation:
        keys = [v.key for v in self.variables]
        dupes = {k for k in keys if keys.count(k) > 1}
        if dupes:
            raise ValueError(f"variables repeat the key(s) {sorted(dupes)}")
        needs = {
            "oauth2_authorization_code": ("authorize_url", "token_url"),
            "oauth2_client_credentials": ("token_url",),
        }.get(self.type, ())
        for attr in needs:
            if not getattr(self, attr):
                raise ValueError(f"type {self.type} needs {attr}")
        if self.type == "woocommerce_app" and "store_url" not in keys:
            raise ValueError("type woocommerce_app needs a store_url variable")
        for where, url in self.urls().items():
            for name in PLACEHOLDER.findall(url):
                if name not in keys:
                    raise ValueError(f"{where} uses {{{{{name}}}}} but no variable has that key")
        return self

    def urls(self) -> dict[str, str]:
        found = {"authorize_url": self.authorize_url, "token_url": self.token_url, "issuer": self.issuer,
                 "base_url": self.base_url}
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
        return ()


class PlatformApp(_Strict):
    key: str
    implementation_id: str
    client_id: str
    client_secret_env: str | None = None


class Catalog(_Strict):
    implementations: list[Implementation]
    platform_apps: list[PlatformApp] = []

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        ids = [i.id for i in self.implementations]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"implementation ids repeat: {sorted(dupes)}")
        for app in self.platform_apps:
            if app.implementation_id not in ids:
                raise ValueError(f"platform app {app.key!r} names unknown implementation {app.implementation_id!r}")
        return self

    def implementation(self, implementation_id: str) -> Implementation | None:
        return next((i for i in self.implementations if i.id == implementation_id), None)

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
    except ValidationError as exc:
        lines = [f"  {path or '(top)'}: {'; '.join(msgs)}" for path, msgs in errors_of(exc).items()]
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
