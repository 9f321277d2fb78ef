"""docs/architecture.md names every package and module of the product, and every Redis key the schema builds."""

from __future__ import annotations

import re

from tasks.storage import schema
from tests.support.markdown import DOCS, ROOT, code, section

ARCHITECTURE = DOCS / "architecture.md"
PACKAGES = ("authq", "api", "worker", "tasks")
SHA256 = re.compile(r"[0-9a-f]{64}")


def architecture() -> str:
    return ARCHITECTURE.read_text(encoding="utf-8")


def test_every_package_has_a_section_and_every_module_is_named() -> None:
    text = architecture()
    named = {span for span in code(text)}
    packages, modules = [], []
    for top in PACKAGES:
        for init in sorted((ROOT / top).rglob("__init__.py")):
            packages.append(".".join(init.parent.relative_to(ROOT).parts))
        modules += [str(p.relative_to(ROOT)) for p in sorted((ROOT / top).rglob("*.py"))]
    sections = {heading for heading in packages if f"\n### {heading}\n" in text or f"\n#### {heading}\n" in text}
    # A package folded into its parent's section is named there by its folder (`api/views/`).
    missing_packages = [p for p in packages if p not in sections and f"{p.replace('.', '/')}/" not in named]
    assert not missing_packages, f"packages docs/architecture.md does not describe: {missing_packages}"
    missing_modules = [m for m in modules if m not in named]
    assert not missing_modules, f"modules docs/architecture.md does not name: {missing_modules}"


def test_the_key_schema_table_has_every_key_the_schema_module_builds() -> None:
    table = section(architecture(), "Redis key schema")
    constants = [value for name, value in vars(schema).items() if name.isupper() and isinstance(value, str)
                 and value.startswith(f"{schema.PREFIX}:") and "*" not in value]
    # Every other key is a shape (``schema.job(tenant, id)``): shown with its fields as {tenant}, {id} ...
    shown = [":".join(shape.segments) for shape in schema.SHAPES if _used(shape.kind)]
    assert len(constants) >= 4 and len(shown) >= 10
    # The table writes a key's variable parts as {t}, {job}, {con}, {sha} …: compare the fixed parts.
    fixed = {_fixed(key) for key in constants + shown}
    documented = {_fixed(span) for span in code(table)}
    missing = sorted(fixed - documented)
    assert not missing, f"Redis keys the schema builds that docs/architecture.md's table does not list: {missing}"


def _used(shape: str) -> bool:
    """Whether any module but the schema uses ``schema.<shape>`` (a shape nobody uses builds no key)."""
    use = re.compile(rf"\bschema\.{shape}\b")
    return any(use.search(path.read_text(encoding="utf-8")) for top in PACKAGES
               for path in (ROOT / top).rglob("*.py") if path != ROOT / "tasks" / "storage" / "schema.py")


def _fixed(key: str) -> str:
    """A key with each ``{…}`` part (and each SHA-256) replaced by ``*``."""
    key = SHA256.sub("{sha}", key)
    out, depth = [], 0
    for char in key:
        if char == "{":
            depth += 1
            if depth == 1:
                out.append("*")
        elif char == "}":
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)
