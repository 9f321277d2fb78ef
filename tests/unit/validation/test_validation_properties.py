"""Property-based tests (hypothesis) of request validation, with no HTTP: fast and pure.

``validate_authorise`` (what ``POST /oauth/authorise`` runs before queueing) must, for any
JSON a client can send, either return the model or raise ``RequestInvalid`` in the
contract's 422 shape: a non-empty ``{dotted.path: [non-empty sentences]}`` whose paths name
the body, its fields or its variables. Never anything else (a ``TypeError``, a pydantic
error escaping, a 500). Valid bodies round-trip.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.errors import RequestInvalid
from tasks.model.bodies import AuthoriseIn
from tasks.model.catalog import load_catalog
from tasks.security.sealing import SecretBox, generate_key
from tasks.validation.field_errors import parse
from tasks.validation.submission import validate_authorise
from tests.support.helpers import TEST_CATALOG, authorise_body

CATALOG = load_catalog(TEST_CATALOG)
BOX = SecretBox(generate_key())
FIELDS = set(AuthoriseIn.model_fields)
VARIABLE_FIELDS = {"key", "value", "label", "secret", "locked", "pivot"}
PIVOT_FIELDS = {"alias", "configurable", "required", "advanced"}

PROPERTIES = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Any value json.loads can give (it accepts NaN and Infinity, so those are included).
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16)


def valid_body() -> dict[str, Any]:
    return authorise_body(variables=[
        {"key": "base_url", "value": "http://127.0.0.1:9"},
        {"key": "consumer_key", "value": "ck_good_1234"},
        {"key": "consumer_secret", "value": "cs_good_secret_5678", "secret": True},
    ])


def _path_is_known(path: str, body: Any) -> bool:
    """A 422 path names the body, one of the model's fields, or a field of a sent variable."""
    parts = path.split(".")
    if parts[0] == "body":
        return parts == ["body"]
    if parts[0] not in FIELDS:
        return False
    if parts[0] != "variables" or len(parts) == 1:
        return True
    # variables.<i>[.<field>[.<pivot field>]]: <i> is an index of the list that was sent
    items = body.get("variables") if isinstance(body, dict) else None
    if not (isinstance(items, list) and parts[1].isdigit() and int(parts[1]) < len(items)):
        return False
    if len(parts) == 2:
        return True
    if parts[2] not in VARIABLE_FIELDS:
        return False
    return len(parts) == 3 or (parts[2] == "pivot" and len(parts) == 4 and parts[3] in PIVOT_FIELDS)


def check_outcome(data: Any) -> AuthoriseIn | RequestInvalid:
    """The property itself: a model, or a RequestInvalid of the contract's shape; nothing else."""
    try:
        model = validate_authorise(data, CATALOG, BOX)
    except RequestInvalid as exc:
        assert isinstance(exc.errors, dict) and exc.errors, exc.errors
        for path, messages in exc.errors.items():
            assert isinstance(path, str) and path, exc.errors
            assert _path_is_known(path, data), f"unknown error path {path!r} for {data!r}"
            assert isinstance(messages, list) and messages, exc.errors
            assert all(isinstance(m, str) and m.strip() for m in messages), exc.errors
        assert isinstance(exc.message, str) and exc.message
        json.dumps({"message": exc.message, "errors": exc.errors})  # renderable as the 422 body
        return exc
    assert isinstance(model, AuthoriseIn)
    return model


# -- arbitrary JSON --------------------------------------------------------------------

@PROPERTIES
@given(json_values)
def test_any_json_is_a_model_or_a_422(data: Any) -> None:
    outcome = check_outcome(data)
    if not isinstance(data, dict):
        assert isinstance(outcome, RequestInvalid) and set(outcome.errors) == {"body"}


@PROPERTIES
@given(st.dictionaries(st.sampled_from(sorted(FIELDS)) | st.text(max_size=8), json_values, max_size=8))
def test_any_object_with_the_models_field_names_is_a_model_or_a_422(data: dict[str, Any]) -> None:
    check_outcome(data)


# -- mutations of a valid body ---------------------------------------------------------

def test_the_valid_body_round_trips() -> None:
    body = valid_body()
    model = check_outcome(body)
    assert isinstance(model, AuthoriseIn)
    again = check_outcome(model.model_dump(mode="json", exclude_unset=True))
    assert again == model
    assert model.name == body["name"] and [v.key for v in model.variables] == ["base_url", "consumer_key",
                                                                              "consumer_secret"]


@PROPERTIES
@given(st.sampled_from(sorted(valid_body())))
def test_dropping_a_field(field: str) -> None:
    body = valid_body()
    del body[field]
    outcome = check_outcome(body)
    if field == "name":  # the only optional field of the valid body
        assert isinstance(outcome, AuthoriseIn)
    else:
        assert isinstance(outcome, RequestInvalid)
        # the missing field is named (variables: the required ones are missing as a whole)
        assert field in {p.split(".")[0] for p in outcome.errors}


@PROPERTIES
@given(st.sampled_from(sorted(valid_body())), json_values)
def test_replacing_a_field_with_any_json(field: str, value: Any) -> None:
    body = valid_body()
    body[field] = value
    outcome = check_outcome(body)
    if isinstance(outcome, AuthoriseIn):
        # accepted only when the value is one the field's type takes (strict: no coercion)
        assert getattr(outcome, field) == value or field == "variables"


@PROPERTIES
@given(st.integers(0, 2), st.sampled_from(sorted(VARIABLE_FIELDS)), json_values)
def test_replacing_a_variable_field_with_any_json(index: int, field: str, value: Any) -> None:
    body = valid_body()
    body["variables"][index][field] = value
    check_outcome(body)


@PROPERTIES
@given(st.integers(0, 2), json_values)
def test_replacing_a_whole_variable_with_any_json(index: int, value: Any) -> None:
    body = valid_body()
    body["variables"][index] = value
    outcome = check_outcome(body)
    if not isinstance(value, dict):
        assert isinstance(outcome, RequestInvalid)
        assert f"variables.{index}" in outcome.errors


LIMITS = {"name": 255, "authentication_implementation_id": 255, "date_format": 64, "session_id": 255,
          "platform_app_key": 255, "certificate_id": 255}


@PROPERTIES
@given(st.sampled_from(sorted(LIMITS)), st.integers(1, 300), st.characters(codec="utf-8"))
def test_strings_past_their_limits(field: str, extra: int, char: str) -> None:
    body = valid_body()
    body[field] = char * (LIMITS[field] + extra)
    outcome = check_outcome(body)
    assert isinstance(outcome, RequestInvalid)
    assert field in outcome.errors


@PROPERTIES
@given(st.integers(0, 2), st.sampled_from(["key", "value", "label"]), st.integers(1, 50))
def test_variable_strings_past_their_limits(index: int, field: str, extra: int) -> None:
    limit = {"key": 255, "value": 8192, "label": 255}[field]
    body = valid_body()
    body["variables"][index][field] = "k" * (limit + extra)
    outcome = check_outcome(body)
    assert isinstance(outcome, RequestInvalid)
    assert f"variables.{index}.{field}" in outcome.errors


@PROPERTIES
@given(st.integers(101, 130))
def test_too_many_variables(count: int) -> None:
    body = valid_body()
    body["variables"] = [{"key": f"v{i}", "value": "x"} for i in range(count)]
    outcome = check_outcome(body)
    assert isinstance(outcome, RequestInvalid) and "variables" in outcome.errors


@PROPERTIES
@given(st.integers(0, 2), st.integers(0, 3), st.data())
def test_duplicate_variable_keys(source: int, at: int, data: st.DataObject) -> None:
    body = valid_body()
    duplicate = copy.deepcopy(body["variables"][source])
    duplicate["value"] = data.draw(st.text(max_size=20))
    body["variables"].insert(at, duplicate)
    outcome = check_outcome(body)
    assert isinstance(outcome, RequestInvalid)
    # the later of the two equal keys is the one named
    later = max(i for i, v in enumerate(body["variables"]) if v["key"] == duplicate["key"])
    assert f"variables.{later}.key" in outcome.errors


@PROPERTIES
@given(st.text(max_size=40))
def test_any_timezone_string(zone: str) -> None:
    body = valid_body()
    body["timezone"] = zone
    outcome = check_outcome(body)
    if isinstance(outcome, RequestInvalid):
        assert "timezone" in outcome.errors


@PROPERTIES
@given(st.integers() | st.floats() | st.booleans() | st.text(max_size=5))
def test_rate_limit_duration_is_a_strict_positive_integer(value: Any) -> None:
    body = valid_body()
    body["rate_limit_duration"] = value
    outcome = check_outcome(body)
    accepted = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    assert isinstance(outcome, AuthoriseIn) is accepted
    if not accepted:
        assert "rate_limit_duration" in outcome.errors


# -- the generic parser the other endpoints use --------------------------------------

@pytest.mark.parametrize("model", ["ConnectionPoolIn", "SessionIn", "CertificateIn", "AuthenticateIn",
                                   "ReauthoriseIn"])
@PROPERTIES
@given(data=json_values)
def test_parse_is_a_model_or_a_422(model: str, data: Any) -> None:
    import tasks.model.bodies as requests

    cls = getattr(requests, model)
    try:
        parsed = parse(cls, data)
    except RequestInvalid as exc:
        assert exc.errors and all(isinstance(p, str) and p for p in exc.errors)
        assert all(p == "body" or p.split(".")[0] in cls.model_fields for p in exc.errors), exc.errors
        assert all(msgs and all(isinstance(m, str) and m for m in msgs) for msgs in exc.errors.values())
        return
    assert isinstance(parsed, cls)
    assert not any(isinstance(v, float) and math.isnan(v) for v in parsed.model_dump().values())
