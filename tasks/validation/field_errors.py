"""Turn pydantic's errors into the contract's 422 shape (Laravel's).

``{"message": "...", "errors": {"variables.2.key": ["The key field is required."]}}``:
dotted paths, one list of human sentences per path.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tasks.errors import RequestInvalid

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _label(loc: tuple[int | str, ...]) -> str:
    names = [p for p in loc if isinstance(p, str)]
    return (names[-1] if names else "value").replace("_", " ")


def _number(bound: Any) -> Any:
    """A bound as written: 30, not the 30.0 a float field holds it as."""
    return int(bound) if isinstance(bound, float) and bound.is_integer() else bound


def sentence(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    label = _label(tuple(error["loc"]))
    if kind == "missing":
        return f"The {label} field is required."
    if kind == "string_too_long":
        return f"The {label} field must not be greater than {ctx.get('max_length')} characters."
    if kind == "string_too_short":
        if ctx.get("min_length") == 1:
            return f"The {label} field must not be empty."
        return f"The {label} field must be at least {ctx.get('min_length')} characters."
    if kind in {"string_type", "str_type"}:
        return f"The {label} field must be a string."
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        return f"The {label} field must be an integer."
    if kind in {"float_type", "float_parsing", "finite_number"}:
        return f"The {label} field must be a number."
    if kind == "bool_type":
        return f"The {label} field must be true or false."
    if kind in {"list_type", "tuple_type"}:
        return f"The {label} field must be an array."
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return f"The {label} field must be an object."
    if kind == "greater_than_equal":
        return f"The {label} field must be at least {_number(ctx.get('ge'))}."
    if kind == "less_than_equal":
        return f"The {label} field must not be greater than {_number(ctx.get('le'))}."
    if kind == "too_long":
        return f"The {label} field must not have more than {ctx.get('max_length')} items."
    if kind == "literal_error":
        return f"The selected {label} is invalid; expected one of {ctx.get('expected')}."
    if kind == "string_pattern_mismatch":
        return f"The {label} field format is invalid."
    if kind == "value_error":
        return str(ctx.get("error") or error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"The {label} field is not allowed."
    return str(error["msg"])


def errors_of(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = prefix + tuple(error["loc"])
        errors.setdefault(field_path(loc), []).append(sentence(error))
    return errors


def parse(model: type[M], data: Any) -> M:
    """Validate ``data`` as ``model`` or raise ``RequestInvalid`` with dotted paths."""
    if not isinstance(data, dict):
        raise RequestInvalid({"body": ["The request body must be a JSON object."]})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(errors_of(exc)) from None


def merge(*parts: dict[str, list[str]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for part in parts:
        for path, messages in part.items():
            merged.setdefault(path, []).extend(messages)
    return merged
