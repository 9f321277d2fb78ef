"""The docs stand alone: every relative link resolves inside the repository, to the file and the
heading it names; nothing points outside it but public web addresses; files the docs name exist."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.markdown import ROOT, anchors, code, documents, links

# Paths the docs name as files of the repository (a first folder of its own, an extension).
REPO_PATH = re.compile(r"(?<![\w./-])((?:api|worker|tasks|authq|bench|tests|docs|\.ci)/[\w./-]*"
                       r"\.(?:py|yaml|json|md))\b")
PLACES_OUTSIDE = ("/work/", "../shared", "shared/spec")
# How the work on the product was organised is no part of it.
PROCESS_WORDS = re.compile(r"\b(?:issue|session|round|sprint|ticket)s? #?\d+\b|\bhelpers?\b", re.I)


def _pages() -> list[tuple[Path, str]]:
    return [(path, path.read_text(encoding="utf-8")) for path in documents()]


def _is_public(host: str) -> bool:
    if host in ("localhost",) or host.endswith((".localhost", ".local", ".test", ".example", ".invalid")):
        return False
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return "." in host


def _check(page: Path, target: str, pages: dict[Path, str]) -> str | None:
    """What is wrong with one link, or None."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        return None if parts.hostname and _is_public(parts.hostname) else "not a public web address"
    if parts.scheme or parts.netloc:
        return f"a {parts.scheme or 'network'} link"
    path = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if not path.is_relative_to(ROOT):
        return "outside the repository"
    if not path.exists():
        return "no such file in the repository"
    if parts.fragment:
        if path.suffix != ".md":
            return "an anchor into a file that is not Markdown"
        text = pages.get(path) or path.read_text(encoding="utf-8")
        if parts.fragment not in anchors(text):
            return f"no heading with the anchor #{parts.fragment}"
    return None


def test_every_link_resolves_inside_the_repository() -> None:
    pages = dict(_pages())
    checked, broken = 0, []
    for page, text in pages.items():
        for target in links(text):
            checked += 1
            problem = _check(page, target, pages)
            if problem:
                broken.append(f"{page.relative_to(ROOT)}: ({target}) {problem}")
    assert not broken, "\n".join(broken)
    assert checked >= 20  # the README and docs/ link to each other throughout


@pytest.mark.parametrize("place", PLACES_OUTSIDE)
def test_no_page_refers_to_a_place_outside_the_repository(place: str) -> None:
    found = [str(page.relative_to(ROOT)) for page, text in _pages() if place in text]
    assert not found, f"{place!r} is not in a clone of the repository, yet {found} name it"


def test_every_file_the_docs_name_exists() -> None:
    missing = sorted({f"{page.relative_to(ROOT)}: {path}" for page, text in _pages()
                      for span in code(text) for path in REPO_PATH.findall(span) if not (ROOT / path).exists()})
    assert not missing, "\n".join(missing)


def test_the_docs_describe_the_product_not_how_its_work_was_organised() -> None:
    found = [f"{page.relative_to(ROOT)}: {m.group(0)!r}" for page, text in _pages()
             for m in PROCESS_WORDS.finditer(text)]
    assert not found, found
