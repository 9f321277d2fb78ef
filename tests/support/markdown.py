"""The project's Markdown as GitHub renders it: code, links, headings and their anchors, tables (for tests/docs/)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[([^\]\n]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE = re.compile(r"^\s*\[[^\]\n]+\]:\s*(\S+)", re.M)
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


def documents() -> list[Path]:
    """README.md and every page under docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def prose(text: str) -> str:
    """The text without fenced blocks and code spans (where a bracket is not a link)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def code(text: str) -> list[str]:
    """Every fenced block's body and every code span, in order."""
    blocks = FENCE.findall(text)
    return blocks + CODE_SPAN.findall(FENCE.sub("", text))


def links(text: str) -> list[str]:
    """The targets of every inline link, image and reference definition outside code."""
    text = prose(text)
    return [target for _, target in LINK.findall(text)] + REFERENCE.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation gone, spaces as hyphens."""
    text = LINK.sub(lambda m: m.group(1), heading).replace("`", "")
    text = re.sub(r"[*_~]{1,3}(\S(?:.*?\S)?)[*_~]{1,3}", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor in a page; a repeated heading gets ``-1``, ``-2`` … as GitHub numbers them."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, heading in HEADING.findall(FENCE.sub("", text)):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def section(text: str, title: str) -> str:
    """The body of the section headed ``title``, up to the next heading of the same or a higher level."""
    for match in HEADING.finditer(text):
        if match.group(2) == title:
            level = len(match.group(1))
            rest = text[match.end():]
            end = re.search(rf"^#{{1,{level}}}\s", rest, re.M)
            return rest[: end.start()] if end else rest
    raise AssertionError(f"no section {title!r}")


def table_rows(text: str) -> list[list[str]]:
    """The cells of every table's body rows (each table's header and separator rows left out)."""
    rows: list[list[str]] = []
    table: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip().startswith("|"):
            table.append(line.strip())
            continue
        rows += [[cell.strip() for cell in row.strip("|").split("|")] for row in table[2:]]
        table = []
    return rows
