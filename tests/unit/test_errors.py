"""``tasks.errors``: one hierarchy, drawn in its docstring, and one list of job error codes.

Every exception class authq defines is drawn in ``tasks/errors.py``'s docstring and derives from
``AuthqError``, except the module-internal signals that docstring names as such; every job error
code raised is an ``ErrorCode`` member, never a bare string; the job view's schema lists exactly
those codes; a secret that no key opens is ``SecretUnreadable`` while running and a
``ConfigError`` only in the start-up probe.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from tasks import errors
from tasks.errors import AuthqError, ConfigError, ErrorCode, JobFailed, SecretUnreadable
from tasks.model.views import JobErrorView
from tasks.security.sealing import SecretBox, generate_key
from tests.support.helpers import ROOT

PACKAGES = ("api", "authq", "tasks", "worker")


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def exception_classes() -> list[type[BaseException]]:
    """Every exception class defined in authq's packages (each module imported)."""
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        names = [package] + [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")
                             if not m.name.endswith(".__main__")]  # (running it is the command line)
        for name in names:
            module = importlib.import_module(name)
            found += [value for value in vars(module).values()
                      if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == name]
    return found


def test_every_exception_class_is_drawn_in_the_hierarchy() -> None:
    tree, *notes = (errors.__doc__ or "").split("\n\n")[1:]
    drawn = {part for line in tree.splitlines() for part in line.replace("─", " ").split()[:3]}
    internal = notes[-1]
    assert "Not ``AuthqError`` subclasses" in internal
    classes = exception_classes()
    assert len(classes) > 15
    for error in classes:
        if issubclass(error, AuthqError):
            assert error.__name__ in drawn, f"{error.__module__}.{error.__name__} is not drawn in tasks/errors.py"
        else:
            assert f"``{error.__name__}``" in internal, f"{error.__module__}.{error.__name__} is not an AuthqError"
            assert error.__module__.startswith("tasks.provider."), error
    outside = {e.__name__ for e in classes if issubclass(e, AuthqError) and e.__module__ != errors.__name__}
    assert outside <= {"DestinationRefused", "NotSent", "ProviderDeclined", "AnswerTooLong"}, outside


def test_every_job_error_code_raised_is_an_error_code_member() -> None:
    """No code is written as a string where a job's error is made: ``JobFailed(code, …)``, a
    subclass's ``super().__init__(code, …)``, or any ``code=``."""
    codes = {member.value for member in ErrorCode}
    bare = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            first = (isinstance(func, ast.Name) and func.id == "JobFailed") or (
                isinstance(func, ast.Attribute) and func.attr == "__init__" and isinstance(func.value, ast.Call)
                and isinstance(func.value.func, ast.Name) and func.value.func.id == "super")
            given = [*node.args[:1]] if first else []
            given += [kw.value for kw in node.keywords if kw.arg == "code"]
            bare += [f"{path.relative_to(ROOT)}:{node.lineno}" for arg in given
                     if isinstance(arg, ast.Constant) and arg.value in codes]
    assert not bare, bare
    error = JobFailed(ErrorCode.STATE_INVALID, "x").as_error()
    assert error["code"] is ErrorCode.STATE_INVALID and json.dumps(error["code"]) == '"state_invalid"'
    with pytest.raises(ValueError, match="no_such_code"):
        JobFailed("no_such_code", "x")  # type: ignore[arg-type]


def test_the_job_view_schema_lists_every_error_code() -> None:
    view = TypeAdapter(JobErrorView)
    code = view.json_schema()["$defs"]["ErrorCode"]
    assert code["enum"] == [member.value for member in ErrorCode]
    assert len(set(code["enum"])) == len(ErrorCode) >= 21
    error = JobFailed(ErrorCode.CREDENTIALS_REJECTED, "m").as_error()
    assert view.validate_python(error)["code"] == "credentials_rejected"
    with pytest.raises(ValidationError, match="code"):
        view.validate_python({**error, "code": "no_such_code"})


def test_a_secret_no_key_opens_is_unreadable_and_only_the_start_up_probe_makes_it_a_config_error() -> None:
    sealed = SecretBox(generate_key()).seal("a stored secret")
    other = SecretBox(generate_key())
    with pytest.raises(SecretUnreadable, match="AUTHQ_SECRET_KEY") as unreadable:
        other.open(sealed)
    assert not isinstance(unreadable.value, ConfigError)
    with pytest.raises(ConfigError, match="AUTHQ_SECRET_KEY"):
        other.check(sealed)
