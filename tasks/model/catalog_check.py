"""Every problem of a catalog file in one run, each with its path and, for YAML, its line.

``authq catalog check`` and a start-up that finds the catalog invalid both report this way:
``implementations[3].token_url (line 41): type oauth1 needs ...``. Field errors of every
entry come from pydantic in one pass; each entry whose fields are right is then checked for
consistency (its ``problems()``), and the file for repeated ids and platform apps naming
unknown implementations. A file that cannot be read says which file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tasks.model.catalog import Catalog, Implementation, Loc, loc_text, platform_app_problems, reference_problems
from tasks.validation.field_errors import sentence

FIELDS_ONLY = {"fields_only": True}


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    line: int | None = None

    def __str__(self) -> str:
        if not self.loc and self.line is None:
            return self.message
        where = loc_text(self.loc) + (f" (line {self.line})" if self.line is not None else "")
        return f"{where}: {self.message}"


def _lines(node: yaml.Node | None, loc: Loc, found: dict[Loc, int]) -> None:
    """The line (1-based) of every key and item of the YAML document, by its path."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                found[(*loc, key.value)] = key.start_mark.line + 1
                _lines(value, (*loc, key.value), found)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found[(*loc, index)] = item.start_mark.line + 1
            _lines(item, (*loc, index), found)


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    """The line of ``loc``, or of the nearest enclosing part the file has (a missing field: its entry)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _field_problems(exc: ValidationError, prefix: Loc = ()) -> list[tuple[Loc, str]]:
    return [((*prefix, *error["loc"]), sentence(error)) for error in exc.errors()]


def problems_of_data(data: Any) -> list[tuple[Loc, str]]:
    """Every problem of a parsed catalog, as (path, message), in file order."""
    if not isinstance(data, dict):
        return [((), "a catalog is a mapping with an implementations list")]
    try:
        Catalog.model_validate(data, context=FIELDS_ONLY)
        failed: set[int] = set()
        found: list[tuple[Loc, str]] = []
    except ValidationError as exc:
        found = _field_problems(exc)
        failed = {loc[1] for loc, _ in found if len(loc) > 1 and loc[0] == "implementations"
                  and isinstance(loc[1], int)}
    items = data.get("implementations")
    entries = items if isinstance(items, list) else []
    valid: list[Implementation | None] = []
    for index, item in enumerate(entries):
        impl = None if index in failed else Implementation.model_validate(item, context=FIELDS_ONLY)
        valid.append(impl)
        if impl is not None:
            found.extend((("implementations", index, *where.split(".")), message)
                         for where, message in impl.problems())
    ids = [str(item.get("id")) if isinstance(item, dict) else "" for item in entries]
    apps = data.get("platform_apps") or []
    app_ids = [str(app.get("implementation_id")) for app in apps if isinstance(app, dict)] \
        if isinstance(apps, list) else []
    found.extend(reference_problems(ids, app_ids))
    if not found:
        catalog = Catalog.model_validate(data)
        for index, problem in enumerate(platform_app_problems(catalog)):
            found.append((("platform_apps", index), problem))
    return sorted(found, key=lambda item: _order(item[0], entries))


def _order(loc: Loc, entries: list[Any]) -> tuple[int, int]:
    """File order: the top's problems, then each entry's, then the platform apps'."""
    if loc[:1] == ("implementations",) and len(loc) > 1 and isinstance(loc[1], int):
        return (1, loc[1])
    return (2 if loc[:1] == ("platform_apps",) else 0, 0)


def catalog_problems(text: str, source: str) -> list[Problem]:
    """Every problem of the catalog ``text`` (read from ``source``: ``.json`` is JSON, else YAML)."""
    lines: dict[Loc, int] = {}
    if source.endswith(".json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            return [Problem((), f"not valid JSON: {exc}")]
    else:
        try:
            data = yaml.safe_load(text)
            _lines(yaml.compose(text, Loader=yaml.SafeLoader), (), lines)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            return [Problem((), f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                            mark.line + 1 if mark is not None else None)]
    return [Problem(loc, message, _line_of(loc, lines)) for loc, message in problems_of_data(data)]


def check_file(path: Path) -> list[Problem]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [Problem((), f"cannot read catalog {path}: {exc.strerror}. Check the path (AUTHQ_CATALOG, or the "
                            "file given to `authq catalog check`).")]
    except UnicodeDecodeError:
        return [Problem((), f"the catalog file {str(path)!r} is not UTF-8 text.")]
    return catalog_problems(text, str(path))
