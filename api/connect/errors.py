"""Where a failure shows on the form: beside the field it names, else in the summary.

A validation error names a request path (``variables.2.value``: the page knows which variable it
sent at each index); a failed job names a field (``variables``, ``session_id``) and a code. A
rejected credential is the implementation's secret part (the password, the token, the client
secret): that is where the user corrects it.
"""

from __future__ import annotations

import re
from typing import Any

from tasks.model.catalog import Implementation

_INDEXED = re.compile(r"^variables\.(\d+)\.")
_NAMED = re.compile(r"^The (\S+) variable")

# What a failed job's code tells the end user, where its own message is written for a developer.
FRIENDLY = {
    "access_denied": "You refused access at the provider, so the account is not connected.",
    "credentials_rejected": "The provider did not accept these credentials.",
    "provider_unreachable": "The provider could not be reached. Check the address, or try again later.",
    "provider_rate_limited": "The provider is busy just now; try again in a few minutes.",
    "session_expired": "This link has expired. Start again from the application you came from.",
    "state_invalid": "The provider's answer came too late or twice. Try again.",
}


def credential_field(impl: Implementation, asked: list[str]) -> str | None:
    """The asked variable a rejected credential concerns."""
    by_type = {"basic": impl.password_variable, "token": impl.token_variable}
    for key in (by_type.get(impl.type), "client_secret", "consumer_secret", "token_secret"):
        if key in asked:
            return key
    secret = [v.key for v in impl.variables if v.is_secret and v.key in asked]
    return secret[0] if secret else None


def place_validation(errors: dict[str, list[str]], sent: list[str], asked: list[str]) -> tuple[dict[str, str],
                                                                                               list[str]]:
    """(messages by asked key, the rest) of a 422's ``errors``; ``sent``: the key at each index."""
    by_field: dict[str, str] = {}
    rest: list[str] = []
    for path, messages in errors.items():
        for message in messages:
            key = None
            indexed = _INDEXED.match(path)
            if indexed and int(indexed.group(1)) < len(sent):
                key = sent[int(indexed.group(1))]
            elif path == "variables" and (named := _NAMED.match(message)):
                key = named.group(1)
            if key in asked and key not in by_field:
                by_field[key] = _plain(message, key)
            else:
                rest.append(message)
    return by_field, rest


def place_job_error(error: dict[str, Any] | None, impl: Implementation, asked: list[str]) -> tuple[dict[str, str],
                                                                                                   list[str]]:
    """(messages by asked key, the rest) of a failed job's ``error``."""
    error = error or {}
    code = str(error.get("code") or "")
    message = FRIENDLY.get(code) or str(error.get("message") or "The connection could not be made.")
    if code == "provider_error" and isinstance(error.get("provider"), dict):
        described = error["provider"].get("error_description") or error["provider"].get("error")
        if described:
            message = f"The provider said: {described}"
    named = str(error.get("field") or "")
    key = named if named in asked else None
    if key is None and (code == "credentials_rejected" or named == "variables"):
        key = credential_field(impl, asked)
    if key is None and (found := _NAMED.match(str(error.get("message") or ""))) and found.group(1) in asked:
        key = found.group(1)
    return ({key: message}, []) if key else ({}, [message])


def _plain(message: str, key: str) -> str:
    """A field's message without the request's vocabulary (the label says which field it is)."""
    if "must not be empty" in message or "is required" in message:
        return "Enter a value."
    return message
