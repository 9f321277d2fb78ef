"""``tasks.errors``: one hierarchy, drawn in its docstring, and one list of job error codes.

Every exception authq defines derives from ``AuthqError`` and is defined in ``tasks/errors.py``
(its docstring draws them all); every job error code raised is an ``ErrorCode`` member, never
a bare string; the job view's schema lists exactly those codes; a secret that no key opens is
``SecretUnreadable`` while running and a ``ConfigError`` only in the start-up probe.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import pytest

from api.schemas import JobErrorView
from tasks import errors
from tasks.errors import AuthqError, ConfigError, ErrorCode, JobFailed, SecretUnreadable
from tasks.security.sealing import SecretBox, generate_key
from tests.support.helpers import ROOT

PACKAGES = ("api", "authq", "tasks", "worker")
BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}
RAISING = {"JobFailed", "ProviderUnreachable"}  # the constructors that take a code


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_every_error_class_is_in_the_hierarchy_and_its_drawing() -> None:
    defined = [value for value in vars(errors).values()
               if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == errors.__name__]
    assert len(defined) > 10
    drawing = (errors.__doc__ or "").split("\n\n")[1]
    for error in defined:
        assert issubclass(error, AuthqError), error
        assert f" {error.__name__} " in drawing or drawing.rstrip().endswith(error.__name__), error


def test_no_exception_is_defined_anywhere_else() -> None:
    ours = {value.__name__ for value in vars(errors).values() if inspect.isclass(value)}
    elsewhere = []
    for path in sources():
        if path == ROOT / "tasks" / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {base.id for base in node.bases if isinstance(base, ast.Name)}
                if bases & (BUILTIN_EXCEPTIONS | ours):
                    elsewhere.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert not elsewhere, elsewhere


def test_every_job_error_code_raised_is_an_error_code_member() -> None:
    bare = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in RAISING:
                given = [*node.args[:1]] if node.func.id == "JobFailed" else []
                given += [kw.value for kw in node.keywords if kw.arg == "code"]
                bare += [f"{path.relative_to(ROOT)}:{node.lineno}" for arg in given if isinstance(arg, ast.Constant)]
    assert not bare, bare
    assert JobFailed(ErrorCode.STATE_INVALID, "x").as_error()["code"] == "state_invalid"
    assert type(JobFailed(ErrorCode.STATE_INVALID, "x").as_error()["code"]) is str  # plain text in the record


def test_the_job_view_schema_lists_every_error_code() -> None:
    schema = JobErrorView.model_json_schema()
    code = schema["$defs"]["ErrorCode"]
    assert code["enum"] == [member.value for member in ErrorCode]
    assert len(set(code["enum"])) == len(ErrorCode) >= 21
    with pytest.raises(ValueError, match="code"):
        JobErrorView.model_validate({"code": "no_such_code", "message": "m", "field": None, "retryable": False})


def test_a_secret_no_key_opens_is_unreadable_and_only_the_start_up_probe_makes_it_a_config_error() -> None:
    sealed = SecretBox(generate_key()).seal("a stored secret")
    other = SecretBox(generate_key())
    with pytest.raises(SecretUnreadable, match="AUTHQ_SECRET_KEY") as unreadable:
        other.open(sealed)
    assert not isinstance(unreadable.value, ConfigError)
    with pytest.raises(ConfigError, match="AUTHQ_SECRET_KEY"):
        other.check(sealed)
