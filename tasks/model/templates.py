"""Catalog templates: ``{{key}}`` and ``{{key|filter|filter}}`` (contract §4).

A placeholder names a connector variable and may pass its value through filters, applied
left to right: ``lower``, ``upper`` and ``dashes`` (``_`` becomes ``-``). One NetSuite account
id ``1234567_SB1`` so gives both its host (``{{account_id|lower|dashes}}`` → ``1234567-sb1``)
and its realm (``{{account_id}}``).

``PLACEHOLDER``'s one group is the variable's name (``findall`` gives names); the filters
are read from the whole match. No I/O: the model, the guard and ``authq catalog check``
share it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)(?:\s*\|\s*[A-Za-z0-9_]*)*\s*\}\}")
_FILTER_NAMES = re.compile(r"\|\s*([A-Za-z0-9_]*)")

FILTERS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "dashes": lambda value: value.replace("_", "-"),
}


def filters_of(placeholder: str) -> list[str]:
    """The filter names of one placeholder's text (``{{a|lower|dashes}}`` → ``[lower, dashes]``)."""
    return _FILTER_NAMES.findall(placeholder)


def apply_filters(value: str, filters: list[str]) -> str:
    for name in filters:
        value = FILTERS[name](value)  # (the catalog's validation refused unknown names)
    return value


def template_problems(template: str) -> list[str]:
    """What is wrong with a template's placeholders: unknown filters, ``{{`` that opens no
    valid placeholder. Empty when it is fine."""
    problems = []
    for match in PLACEHOLDER.finditer(template):
        unknown = [f for f in filters_of(match.group(0)) if f not in FILTERS]
        if unknown:
            problems.append(f"{match.group(0)} uses the unknown filter(s) {unknown}; the filters are "
                            f"{sorted(FILTERS)}")
    rest = PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        problems.append("has a '{{' or '}}' that is not a placeholder {{key}} or {{key|filter}} "
                        "(keys are letters, digits, '_', '.', '-')")
    return problems


def render_text(template: str, values: dict[str, str], value_of: Callable[[str], str] | None = None) -> str:
    """``template`` with every placeholder replaced by its filtered value, as is (not URL-encoded):
    for texts such as an OAuth 1.0a realm. ``value_of`` looks a name up (default: ``values``)."""
    look = value_of or values.__getitem__
    return PLACEHOLDER.sub(lambda m: apply_filters(look(m.group(1)), filters_of(m.group(0))), template)


def render_encoded(template: str, value_of: Callable[[str], str]) -> str:
    """``template`` with every placeholder replaced by its filtered value, URL-encoded (a path or
    host part)."""
    return PLACEHOLDER.sub(lambda m: quote(apply_filters(value_of(m.group(1)), filters_of(m.group(0))), safe=""),
                           template)
