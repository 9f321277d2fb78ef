"""A service-account JSON key file (Google's: ``client_email``, ``private_key``,
``private_key_id``), as the ``service_account`` variable of an ``oauth2_jwt_bearer`` connector
holds it (contract §4). Parsed at submission, so a file that cannot sign is a 422 at its
variable, and again in the worker, which signs with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tasks.model.bodies import VariableIn

VARIABLE = "service_account"


@dataclass(frozen=True)
class ServiceAccountKey:
    client_email: str
    private_key_pem: str
    private_key_id: str | None


def parse_service_account(text: str) -> ServiceAccountKey:
    """The key file's parts; ``ValueError`` saying what is wrong (never quoting the key)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("The service_account variable must hold the provider's JSON key file; this is not "
                         "JSON.") from None
    if not isinstance(data, dict):
        raise ValueError("The service_account key file must be a JSON object.")
    email, pem, key_id = data.get("client_email"), data.get("private_key"), data.get("private_key_id")
    if not isinstance(email, str) or not email:
        raise ValueError("The service_account key file has no client_email.")
    if not isinstance(pem, str) or "PRIVATE KEY-----" not in pem:
        raise ValueError("The service_account key file has no private_key.")
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("The service_account key file's private_key is not a readable, unencrypted PEM "
                         "private key.") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("The service_account key file's private_key must be an RSA key (RS256).")
    return ServiceAccountKey(email, pem, key_id if isinstance(key_id, str) and key_id else None)


def key_file_errors(items: Sequence[VariableIn], impl_type: str) -> dict[str, list[str]]:
    """422 errors for the service-account key files among a request's variables, at their values."""
    if impl_type != "oauth2_jwt_bearer":
        return {}
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        if item.key == VARIABLE and item.value:
            try:
                parse_service_account(item.value)
            except ValueError as exc:
                errors[f"variables.{index}.value"] = [str(exc)]
    return errors
