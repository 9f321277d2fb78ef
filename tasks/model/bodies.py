"""The request bodies of the contract (§5), as pydantic models.

These same models validate requests and generate the API description. Rules that need
the catalog (does the implementation exist, are its required variables given) live in
``submission.py``; everything decidable from the body alone lives here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from functools import cache
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator
from yarl import URL

RateLimitUnit = Literal["second", "minute", "hour", "day"]
# The values of one request's variables, in all (contract §5): each may hold 8192 characters,
# but a hundred of them would be stored (sealed, in the job's request and the connector) per call.
MAX_VARIABLE_VALUES = 64 * 1024
Str255 = Annotated[StrictStr, Field(max_length=255)]
VariableKey = Annotated[StrictStr, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")]


class Body(BaseModel):
    # Strict: "5" is not an integer and "true" is not a boolean. Unknown fields are ignored,
    # as the Patchworks API does.
    model_config = ConfigDict(strict=True, extra="ignore")


class Pivot(Body):
    alias: Str255 | None = None
    configurable: StrictBool | None = None
    required: StrictBool | None = None
    advanced: StrictBool | None = None


class VariableIn(Body):
    key: VariableKey
    value: Annotated[StrictStr, Field(max_length=8192)] | None = None
    label: Str255 | None = None
    secret: StrictBool | None = None
    locked: StrictBool | None = None
    pivot: Pivot | None = None


def _within_values_cap(variables: Sequence[VariableIn]) -> None:
    total = sum(len(v.value.encode()) for v in variables if v.value)
    if total > MAX_VARIABLE_VALUES:
        raise ValueError(f"The variables' values must not exceed 64 KiB ({MAX_VARIABLE_VALUES} bytes) in all; "
                         f"these hold {total} bytes.")


class ReauthoriseVariableIn(VariableIn):
    id: Str255 | None = None
    key: VariableKey | None = None  # type: ignore[assignment]  # optional when `id` names the variable


@cache
def _iana_zones() -> frozenset[str]:
    # Names, not whatever ZoneInfo can open: it also opens the host database's posix/…,
    # right/… and localtime files, which are not IANA names and may be absent on a worker.
    return frozenset(available_timezones() - {"localtime"})


def _iana_zone(value: str) -> str:
    if value not in _iana_zones():
        raise ValueError(f"The timezone {value!r} is not a valid IANA time zone (e.g. Europe/London).")
    return value


# The connector settings' rules, written once: authorise, reauthorise and a session's
# ``defaults`` (which the connect page submits as authorise fields) all validate with them.
Timezone = Annotated[StrictStr, AfterValidator(_iana_zone)]
DateFormat = Annotated[StrictStr, Field(min_length=1, max_length=64)]
RateLimitDuration = Annotated[StrictInt, Field(ge=1)]
PoolId = Annotated[StrictInt, Field(ge=1)]


class ConnectorSettingsIn(Body):
    name: Str255 | None = None
    authentication_implementation_id: Str255
    timezone: Timezone
    date_format: DateFormat
    rate_limit_unit: RateLimitUnit
    rate_limit_duration: RateLimitDuration
    connection_pool_id: PoolId | None = None
    session_id: Str255 | None = None
    platform_app_key: Str255 | None = None
    certificate_id: Str255 | None = None


class AuthoriseIn(ConnectorSettingsIn):
    variables: Annotated[list[VariableIn], Field(max_length=100)] = []

    @field_validator("variables")
    @classmethod
    def _values_cap(cls, value: list[VariableIn]) -> list[VariableIn]:
        _within_values_cap(value)
        return value


class ReauthoriseIn(Body):
    """The same fields as authorise, all optional, plus ``type`` and ``variables.*.id``."""

    type: StrictStr | None = None
    name: Str255 | None = None
    authentication_implementation_id: Str255 | None = None
    timezone: Timezone | None = None
    date_format: DateFormat | None = None
    rate_limit_unit: RateLimitUnit | None = None
    rate_limit_duration: RateLimitDuration | None = None
    connection_pool_id: PoolId | None = None
    session_id: Str255 | None = None
    platform_app_key: Str255 | None = None
    certificate_id: Str255 | None = None
    variables: Annotated[list[ReauthoriseVariableIn], Field(max_length=100)] | None = None

    @field_validator("variables")
    @classmethod
    def _values_cap(cls, value: list[ReauthoriseVariableIn] | None) -> list[ReauthoriseVariableIn] | None:
        _within_values_cap(value or ())
        return value


class AuthenticateIn(Body):
    state: Annotated[StrictStr, Field(min_length=1, max_length=512)]
    code: Annotated[StrictStr, Field(max_length=4096)] | None = None
    error: Annotated[StrictStr, Field(max_length=255)] | None = None
    error_description: Annotated[StrictStr, Field(max_length=2048)] | None = None
    iss: Annotated[StrictStr, Field(max_length=2048)] | None = None


class OAuth1AuthenticateIn(Body):
    """OAuth 1.0a's callback (contract §5): the request token and the verifier the provider gave."""

    oauth_token: Annotated[StrictStr, Field(min_length=1, max_length=512)]
    oauth_verifier: Annotated[StrictStr, Field(min_length=1, max_length=4096)]


class ConnectionPoolIn(Body):
    name: Str255
    limit: Annotated[StrictInt, Field(ge=1)]
    timeout: Annotated[StrictInt, Field(ge=1)] | None = None


class PermitIn(Body):
    wait_seconds: Annotated[float, Field(ge=0, le=30, allow_inf_nan=False,
                                                     description="How long to wait for a permit, in "
                                                                 "seconds (0–30); 0 answers at once.")] = 0


class CertificateIn(Body):
    certificate: Annotated[StrictStr, Field(min_length=1, max_length=200_000)]
    passphrase: Annotated[StrictStr, Field(max_length=1000)] | None = None
    name: Str255 | None = None
    connector_id: Str255 | None = None


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")  # as yarl leaves a name: lower case, IDNA-encoded


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        labels = host.removesuffix(".").split(".")
        return all(_HOST_LABEL.fullmatch(label) for label in labels)


def normalised_return_url(value: str) -> str:
    """``value`` as the redirect to it will be written, or ``ValueError`` saying why none can be.

    Parsed by yarl, the library aiohttp writes ``Location`` with: what passes here is exactly
    what the callback's redirect can use. yarl drops tabs and newlines silently and reads a
    backslash as a path separator (as browsers do), so those are refused before parsing."""
    if "\\" in value or _CONTROL.search(value):
        raise ValueError("The return url must not contain a backslash or a control character.")
    try:
        url = URL(value)
    except ValueError:
        raise ValueError("The return url is not a valid URL.") from None
    if url.scheme not in {"http", "https"} or not url.raw_host or not value.lower().startswith(url.scheme + "://"):
        raise ValueError("The return url must be an absolute http(s) URL.")
    if "@" in (url.raw_authority or ""):
        raise ValueError("The return url must not contain user info (a name or password before @).")
    if not _valid_host(url.raw_host) or url.explicit_port == 0:
        raise ValueError("The return url's host or port is not valid.")
    return str(url)


class SessionDefaultsIn(Body):
    """The authorise fields a session sets for the connector its connect page makes (contract §5):
    each with the authorise rules (the same annotated types as ``ConnectorSettingsIn``)."""

    name: Str255 | None = None
    timezone: Timezone | None = None
    date_format: DateFormat | None = None
    rate_limit_unit: RateLimitUnit | None = None
    rate_limit_duration: RateLimitDuration | None = None
    connection_pool_id: PoolId | None = None
    certificate_id: Str255 | None = None


class SessionIn(Body):
    end_user_id: Str255 | None = None
    return_url: Annotated[StrictStr, Field(max_length=2048)] | None = None
    allowed_implementations: Annotated[list[Str255], Field(max_length=100)] | None = None
    ttl_seconds: Annotated[StrictInt, Field(ge=60, le=86400)] = 1800
    defaults: SessionDefaultsIn | None = None
    # The tenant's own connector: its connect page re-authorises that one instead of making another.
    connector_id: Str255 | None = None

    @field_validator("return_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else normalised_return_url(value)


class WooCallbackIn(BaseModel):
    """What WooCommerce posts to ``callback_url`` (its types are loose: key_id is an int)."""

    model_config = ConfigDict(extra="ignore")
    key_id: int | str | None = None
    user_id: StrictStr
    consumer_key: Annotated[StrictStr, Field(min_length=1, max_length=255)]
    consumer_secret: Annotated[StrictStr, Field(min_length=1, max_length=255)]
    key_permissions: StrictStr | None = None
