"""A secret is only ever sent to the host it was given for (contract §5).

A reauthorise that changes where the implementation's URLs point (another implementation,
or a new value for a variable in a URL's scheme, host or port) must give every secret
variable again: the stored ones were given for the old hosts. Which variables decide the
hosts is read from the catalog's URL templates (``Implementation.authority_variables``).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from tasks.model.bodies import ReauthoriseVariableIn
from tasks.model.catalog import Implementation
from tasks.model.records import Variable
from tasks.security.sealing import SecretBox

Where = tuple[str, str, int | None] | str | None


def _where(value: str | None) -> Where:
    """What of a variable's value decides a destination: of a whole base URL, its scheme, host
    and port (its path may change freely); of anything else, the value itself."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    if parts.scheme and parts.netloc:
        try:
            port = parts.port
        except ValueError:
            return value
        default = {"http": 80, "https": 443}.get(parts.scheme.lower())
        return parts.scheme.lower(), (parts.hostname or "").rstrip("."), port if port != default else None
    return value


def _moved(current: Sequence[Variable], merged: Sequence[Variable], impl: Implementation,
           given_for: Implementation | None, box: SecretBox) -> list[str]:
    """What moves the destination: the implementation, or the keys of the variables whose change does."""
    if given_for is None or impl.id != given_for.id:
        return ["the implementation"]
    before = {v.key: v for v in current}
    after = {v.key: v for v in merged}
    moved = []
    for key in sorted(impl.authority_variables()):
        old, new = before.get(key), after.get(key)
        if _where(old.clear_value(box) if old else None) != _where(new.clear_value(box) if new else None):
            moved.append(key)
    return moved


def moves_destination(current: Sequence[Variable], merged: Sequence[Variable], impl: Implementation,
                      given_for: Implementation | None, box: SecretBox) -> bool:
    """Whether the merged variables (or another implementation) point the connector's URLs elsewhere."""
    return bool(_moved(current, merged, impl, given_for, box))


def destination_errors(current: Sequence[Variable], merged: Sequence[Variable],
                       items: Sequence[ReauthoriseVariableIn], impl: Implementation,
                       given_for: Implementation | None, box: SecretBox) -> dict[str, list[str]]:
    """422 at ``variables`` naming each stored secret this request does not give again, when the
    request moves the connector's destination; else nothing. ``given_for`` is the implementation
    the stored variables were given for (None: no longer in the catalog, so it moves too)."""
    moved = _moved(current, merged, impl, given_for, box)
    if not moved:
        return {}
    by_id = {v.id: v.key for v in current}
    given = {item.key or by_id.get(item.id or "") for item in items if item.value not in (None, "")}
    kept = [v.key for v in merged if v.secret and v.has_value and v.key not in given]
    what = ", ".join(moved)
    return {"variables": [f"The {key} variable is secret and must be given again: this request changes where the "
                          f"connector's URLs point ({what})." for key in kept]} if kept else {}
