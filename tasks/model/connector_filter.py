"""``GET /connectors``' filters, Patchworks-style: ``filter[status]=expired,failed`` (a comma
means "or"; several filters must all hold). An unknown filter name, or a status that does not
exist, is a 422 at ``filter.<name>``: a filter silently ignored would answer with every
connector, which a client acting on the answer (say, re-authorising the expired ones) must
never get by mistake."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import get_args

from tasks.errors import RequestInvalid
from tasks.model.records import Connector
from tasks.model.views import ConnectorStatus

FIELDS = ("status", "authentication_implementation_id", "system", "session_id")
STATUSES = frozenset(get_args(ConnectorStatus))
MAX_VALUES = 50  # values of one filter: enough for any real "or", never a megabyte of them


@dataclass(frozen=True)
class ConnectorFilter:
    """Per field, the values one of which a connector's must be; an absent field: any value."""

    wanted: dict[str, frozenset[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.wanted)

    def matches(self, connector: Connector) -> bool:
        return all(getattr(connector, name) in values for name, values in self.wanted.items())

    def query(self) -> dict[str, str]:
        """The filter as query parameters again (for the page's links)."""
        return {f"filter[{name}]": ",".join(sorted(values)) for name, values in self.wanted.items()}


def parse_filter(params: Iterable[tuple[str, str]]) -> ConnectorFilter:
    """The filter of a request's query parameters (``page`` and the like are left alone)."""
    wanted: dict[str, set[str]] = {}
    errors: dict[str, list[str]] = {}
    for key, raw in params:
        if key == "status":
            key = "filter[status]"  # ``?status=expired``: the one filter also taken by its bare name
        if not key.startswith("filter"):
            continue
        name = key[len("filter["):-1] if key.startswith("filter[") and key.endswith("]") else ""
        if name not in FIELDS:
            shown = name or key
            errors[f"filter.{shown}"] = [f"Unknown filter {key!r}; filters are "
                                         + ", ".join(f"filter[{f}]" for f in FIELDS) + "."]
            continue
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if not values:
            errors[f"filter.{name}"] = [f"The filter.{name} field needs a value."]
        elif len(values) > MAX_VALUES:
            errors[f"filter.{name}"] = [f"The filter.{name} field takes at most {MAX_VALUES} values."]
        elif name == "status" and not values <= STATUSES:
            errors[f"filter.{name}"] = ["The selected filter.status is invalid; statuses are "
                                        + ", ".join(sorted(STATUSES)) + "."]
        else:
            wanted.setdefault(name, set()).update(values)  # the same filter twice: either list's values
    if errors:
        raise RequestInvalid(errors)
    return ConnectorFilter({name: frozenset(values) for name, values in wanted.items()})
