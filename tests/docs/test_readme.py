"""The README: it opens with the two commands CI runs, and its settings table is every setting the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from tasks.settings import Settings
from tests.support.markdown import FENCE, README, ROOT, section, table_rows

CODE_DIRS = ("api", "tasks", "worker", "authq")
# An AUTHQ_ name as the code writes it (not ``_AUTHQ_ID``, not the bare prefix).
SETTING_NAME = re.compile(r"(?<![A-Za-z0-9_])AUTHQ_[A-Z0-9_]*[A-Z0-9]")
UP = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/authq up"
TEST = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def settings_table() -> dict[str, tuple[str, str]]:
    """``AUTHQ_NAME`` -> (meaning, default), from the README's Settings table."""
    rows = table_rows(section(readme(), "Settings"))
    return {row[0].strip("`"): (row[1], row[2]) for row in rows}


def names_the_code_mentions() -> dict[str, list[str]]:
    """Every ``AUTHQ_*`` name written anywhere in the product's code -> the files that write it."""
    found: dict[str, list[str]] = {}
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name in set(SETTING_NAME.findall(path.read_text(encoding="utf-8"))):
                found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def settings_fields() -> dict[str, str]:
    """``AUTHQ_NAME`` -> field name, for every field of ``Settings``, as pydantic-settings reads them."""
    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper(): name for name in Settings.model_fields}


def test_readme_opens_with_the_commands_that_run_the_service_and_its_tests() -> None:
    text = readme()
    first_block = FENCE.search(text)
    assert first_block is not None
    assert text.index(first_block.group(0)) < text.index("\n## "), "the commands come before any section"
    assert first_block.group(0).splitlines()[1:-1] == [UP, TEST]
    # CI runs the second one as the README gives it: each of its steps a command line of .ci/run,
    # in the README's order (the static checks stand between the install and the tests).
    steps = TEST.split(" && ")
    commands = ci_commands()
    assert all(step in commands for step in steps), f".ci/run does not run every step of {TEST!r}: {commands}"
    at = [commands.index(step) for step in steps]
    assert at == sorted(at), f".ci/run runs the README's steps out of order: {commands}"


def test_ci_runs_the_static_checks_between_the_install_and_the_tests() -> None:
    # docs/operations.md's "Testing" says what CI checks; a finding of either fails the run.
    commands = ci_commands()
    install, tests = commands.index(".venv/bin/pip install -e '.[test]'"), commands.index(".venv/bin/pytest")
    assert install < commands.index(".venv/bin/ruff check .") < tests
    assert install < commands.index(".venv/bin/mypy") < tests


def ci_commands() -> list[str]:
    """.ci/run's command lines, comments and blank lines left out."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_every_setting_is_in_the_readme_and_the_readme_has_no_other() -> None:
    table = settings_table()
    fields = settings_fields()
    mentioned = names_the_code_mentions()
    missing = sorted(set(fields) - set(table))
    assert not missing, f"Settings fields not in the README's settings table: {missing}"
    undocumented = {name: files for name, files in mentioned.items() if name not in table}
    assert not undocumented, f"AUTHQ_ names the code uses, not in the README's settings table: {undocumented}"
    stale = sorted(set(table) - set(fields) - set(mentioned))
    assert not stale, f"the README documents settings the code does not read: {stale}"
    assert len(table) >= len(fields) > 10


def _literal(value: object) -> str | None:
    """A default as the README writes it, for the defaults that are plain values."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, (int, str, Path)):
        return str(value)
    return None


def test_the_readme_gives_each_plain_default_as_the_code_has_it() -> None:
    table = settings_table()
    checked = 0
    for env_name, field in settings_fields().items():
        literal = _literal(Settings.model_fields[field].default)
        if literal is None:
            continue  # no default (None), or a secret: the README says in words what happens
        assert f"`{literal}`" in table[env_name][1], f"{env_name}: the code's default is {literal!r}"
        checked += 1
    assert checked >= 10
