"""Whole-request validation of the seed endpoints: the body rules plus the catalog rules.

Both run before a job is queued, so bad input gets a 422 and changes nothing.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import ValidationError

from tasks.errors import RequestInvalid
from tasks.model.bodies import AuthoriseIn, ReauthoriseIn
from tasks.model.catalog import Catalog, Implementation
from tasks.model.records import Connector
from tasks.model.service_account import key_file_errors
from tasks.security.sealing import SecretBox
from tasks.validation.field_errors import errors_of, merge
from tasks.validation.variables import build_variables, merge_variables

UNKNOWN_IMPLEMENTATION = "The selected authentication implementation id is invalid."


class _CheckingBox:
    """For validation, which only needs to know a secret value is there: the variables it
    builds are thrown away, so encrypting their secrets would be wasted work."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    def seal(self, plaintext: str) -> str:
        return "(not sealed: validation only)"

    def open(self, sealed: str) -> str:
        return self._box.open(sealed)


def _checking(box: SecretBox) -> SecretBox:
    return cast(SecretBox, _CheckingBox(box))


def _implementation_errors(raw_id: Any, catalog: Catalog) -> dict[str, list[str]]:
    if isinstance(raw_id, str) and raw_id and catalog.implementation(raw_id) is None:
        return {"authentication_implementation_id": [UNKNOWN_IMPLEMENTATION]}
    return {}


def validate_authorise(data: Any, catalog: Catalog, box: SecretBox) -> AuthoriseIn:
    if not isinstance(data, dict):
        raise RequestInvalid({"body": ["The request body must be a JSON object."]})
    try:
        body = AuthoriseIn.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(merge(errors_of(exc), _implementation_errors(
            data.get("authentication_implementation_id"), catalog))) from None
    impl = catalog.implementation(body.authentication_implementation_id)
    if impl is None:
        raise RequestInvalid({"authentication_implementation_id": [UNKNOWN_IMPLEMENTATION]})
    build_variables(body.variables, impl, _checking(box), platform_app=body.platform_app_key is not None)
    key_errors = key_file_errors(body.variables, impl.type)
    if key_errors:
        raise RequestInvalid(key_errors)
    return body


def validate_reauthorise(data: Any, connector: Connector, catalog: Catalog,
                         box: SecretBox) -> tuple[ReauthoriseIn, Implementation]:
    if not isinstance(data, dict):
        raise RequestInvalid({"body": ["The request body must be a JSON object."]})
    try:
        body = ReauthoriseIn.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(merge(errors_of(exc), _implementation_errors(
            data.get("authentication_implementation_id"), catalog))) from None
    impl = catalog.implementation(body.authentication_implementation_id or connector.authentication_implementation_id)
    if impl is None:
        field = "authentication_implementation_id"
        raise RequestInvalid({field: [UNKNOWN_IMPLEMENTATION if body.authentication_implementation_id else
                                      "The connector's implementation is no longer in the catalog; name one."]})
    if body.type is not None and body.type != impl.type:
        raise RequestInvalid({"type": [f"The type must be {impl.type!r}, the implementation's auth type."]})
    platform_app = (body.platform_app_key or connector.platform_app_key) is not None
    merge_variables(connector.variables, body.variables or [], impl, _checking(box), platform_app,
                    given_for=catalog.implementation(connector.authentication_implementation_id))
    key_errors = key_file_errors(body.variables or [], impl.type)
    if key_errors:
        raise RequestInvalid(key_errors)
    return body, impl
