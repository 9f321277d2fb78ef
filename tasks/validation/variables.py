"""Connector variables: build them from a request and the catalog, merge updates.

One function decides every variable rule (duplicates, locked values, required keys), and
both the API (to answer 422 before queueing) and the job (to build the connector) call it,
so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.errors import RequestInvalid
from tasks.model.bodies import ReauthoriseVariableIn, VariableIn
from tasks.model.catalog import Implementation
from tasks.model.records import Pivot, Variable, new_id
from tasks.security.sealing import SecretBox
from tasks.validation.destinations import destination_errors
from tasks.validation.field_errors import merge

# Client credentials a platform app supplies in place of the connector's own variables.
PLATFORM_APP_SUPPLIES = frozenset({"client_id", "client_secret"})


def _duplicate_errors(items: Sequence[VariableIn], existing: Sequence[Variable] = ()) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    by_id = {v.id: v.key for v in existing}
    for i, item in enumerate(items):
        key = item.key or by_id.get(getattr(item, "id", None) or "")
        if key is None:
            continue
        if key in seen:
            errors[f"variables.{i}.key"] = [f"The variables.{i}.key field has a duplicate value ({key!r})."]
        seen.add(key)
    return errors


def _from_item(item: VariableIn, impl: Implementation, box: SecretBox, var_id: str | None = None) -> Variable:
    spec = impl.variable(item.key or "")
    secret = bool(item.secret) or (spec.is_secret if spec else False)
    pivot_in = item.pivot
    # Built validated: with pydantic 2's compiled validators that is cheaper than model_construct
    # (measured: a Pivot 0.9 µs against 3.1, a Variable 2.4 against 3.9), and this runs for every
    # variable of every accepted request (the API validates with it) and of every job.
    pivot = Pivot(
        alias=(pivot_in.alias if pivot_in and pivot_in.alias is not None else (spec.alias if spec else None)),
        configurable=(pivot_in.configurable if pivot_in and pivot_in.configurable is not None
                      else bool(spec and spec.configurable)),
        required=(pivot_in.required if pivot_in and pivot_in.required is not None else bool(spec and spec.required)),
        advanced=(pivot_in.advanced if pivot_in and pivot_in.advanced is not None else bool(spec and spec.advanced)),
    )
    value = item.value if item.value is not None else (spec.default if spec else None)
    sealed = box.seal(value) if secret and value not in (None, "") else None
    variable = Variable(
        id=var_id or new_id("var"),
        key=item.key or "",
        value=None if secret else value,
        value_sealed=sealed,
        label=item.label if item.label is not None else (spec.label if spec else None),
        secret=secret,
        locked=bool(item.locked) or bool(spec and spec.locked),
        pivot=pivot,
    )
    if sealed is not None and value is not None:
        variable._sealed_here = (sealed, value)
    return variable


def _defaults(impl: Implementation, present: set[str], box: SecretBox) -> list[Variable]:
    return [_from_item(VariableIn(key=spec.key), impl, box) for spec in impl.variables if spec.key not in present]


def _sent_empty(items: Sequence[VariableIn], existing: Sequence[Variable] = ()) -> dict[str, int]:
    """The keys the request sends with an empty value, each with its (last) index in the request."""
    by_id = {v.id: v.key for v in existing}
    found: dict[str, int] = {}
    for i, item in enumerate(items):
        key = item.key or by_id.get(getattr(item, "id", None) or "")
        if key and item.value == "":
            found[key] = i
    return found


def _required_errors(variables: Sequence[Variable], impl: Implementation, platform_app: bool,
                     sent_empty: dict[str, int]) -> dict[str, list[str]]:
    """Required variables without a value: at ``variables.<i>.value`` when the request sent
    the variable empty (``sent_empty``: key -> the request's index), else at ``variables``."""
    errors: dict[str, list[str]] = {}
    missing = []
    by_key = {v.key: v for v in variables}
    for spec in impl.variables:
        if not spec.required or (platform_app and spec.key in PLATFORM_APP_SUPPLIES):
            continue
        var = by_key.get(spec.key)
        if var is not None and var.has_value:
            continue
        if spec.key in sent_empty:
            errors[f"variables.{sent_empty[spec.key]}.value"] = [
                f"The {spec.key} variable is required; its value must not be empty."]
        else:
            missing.append(spec.key)
    if missing:
        errors["variables"] = [f"The {key} variable is required and must have a value." for key in missing]
    return errors


def build_variables(items: Sequence[VariableIn], impl: Implementation, box: SecretBox,
                    platform_app: bool) -> list[Variable]:
    """Variables of a new connector; raises RequestInvalid on duplicates or missing values."""
    errors = _duplicate_errors(items)
    if errors:
        raise RequestInvalid(errors)
    built = [_from_item(item, impl, box) for item in items]
    built += _defaults(impl, {v.key for v in built}, box)
    errors = _required_errors(built, impl, platform_app, _sent_empty(items))
    if errors:
        raise RequestInvalid(errors)
    return built


def merge_variables(current: Sequence[Variable], items: Sequence[ReauthoriseVariableIn], impl: Implementation,
                    box: SecretBox, platform_app: bool, *, given_for: Implementation | None) -> list[Variable]:
    """Apply a reauthorise's variables: by ``id`` update, by ``key`` add or replace. ``given_for``:
    the implementation ``current`` was given for (a move to other hosts needs the secrets again)."""
    errors = _duplicate_errors(items, current)
    merged = {v.key: v for v in current}
    ids = {v.id: v for v in current}
    for i, item in enumerate(items):
        target = ids.get(item.id) if item.id else merged.get(item.key or "")
        if item.id and target is None:
            errors.setdefault(f"variables.{i}.id", []).append(f"The selected variables.{i}.id is invalid.")
            continue
        if item.id is None and item.key is None:
            errors.setdefault(f"variables.{i}.key", []).append("The key field is required when id is not given.")
            continue
        if target is not None and target.locked and item.value is not None:
            old = box.open(target.value_sealed) if target.value_sealed else target.value
            if item.value != (old or ""):
                errors.setdefault(f"variables.{i}.value", []).append(
                    f"The {target.key} variable is locked; its value cannot be changed.")
                continue
        # A locked variable can be neither removed (renamed away) nor unlocked to free its value.
        if target is not None and target.locked and item.key and item.key != target.key:
            errors.setdefault(f"variables.{i}.key", []).append(
                f"The {target.key} variable is locked; its key cannot be changed.")
            continue
        if target is not None and target.locked and item.locked is False:
            errors.setdefault(f"variables.{i}.locked", []).append(
                f"The {target.key} variable is locked; it cannot be unlocked.")
            continue
        if item.key and target is not None and item.key != target.key and item.key in merged:
            errors.setdefault(f"variables.{i}.key", []).append(f"The key {item.key!r} is already used.")
            continue
        fields = item.model_dump(exclude_unset=True, exclude={"id"})
        if target is not None:
            base = {"key": target.key, "label": target.label, "secret": target.secret, "locked": target.locked,
                    "pivot": target.pivot.model_dump()}
            if "value" not in fields:  # keep the current value, re-sealed as-is below
                fields["value"] = None
            base.update({k: v for k, v in fields.items() if v is not None})
            fields = base
        new = _from_item(ReauthoriseVariableIn.model_validate(fields), impl, box, var_id=target.id if target else None)
        if target is not None and item.value is None:
            new = new.model_copy(update={"value": target.value if not new.secret else None,
                                         "value_sealed": target.value_sealed if new.secret else None})
        if target is not None:
            merged.pop(target.key, None)
        merged[new.key] = new
    if errors:
        raise RequestInvalid(errors)
    result = list(merged.values())
    errors = merge(_required_errors(result, impl, platform_app, _sent_empty(items, current)),
                   destination_errors(current, result, items, impl, given_for, box))
    if errors:
        raise RequestInvalid(errors)
    return result


def plain_values(variables: Sequence[Variable], box: SecretBox) -> dict[str, str]:
    """Every variable's value in the clear, for building provider requests inside a job."""
    values: dict[str, str] = {}
    for var in variables:
        value = var.clear_value(box)
        if value is not None:
            values[var.key] = value
    return values
