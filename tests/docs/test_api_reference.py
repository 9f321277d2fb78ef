"""docs/api.md keeps step with the code: every route of the app, every field, parameter, header and
status of its OpenAPI document, and every job error code the code can raise, in both directions."""

from __future__ import annotations

import ast
import enum
import importlib
import pkgutil
import re

from aiohttp.test_utils import TestClient

import tasks.errors
from api.app import create_app
from tasks.settings import Settings
from tests.support.markdown import DOCS, ROOT, code, section, table_rows
from worker.queues import make_job_queue

API_MD = DOCS / "api.md"
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
ERROR_CODE = re.compile(r"^[a-z]+(?:_[a-z]+)+$")
ERROR_CODE_SECTION = "Job error codes"


def api_md() -> str:
    return API_MD.read_text(encoding="utf-8")


def code_tokens(text: str) -> set[str]:
    """Every name written as code on the page (in code spans and fenced blocks)."""
    return {token for chunk in code(text) for token in TOKEN.findall(chunk)}


def test_every_route_of_the_app_is_in_the_reference(settings: Settings) -> None:
    app = create_app(settings, make_job_queue(settings))
    routes = {(route.method, route.resource.canonical) for route in app.router.routes()
              if route.resource is not None and route.method not in ("HEAD", "*")}
    text = api_md()
    missing = sorted(f"{method} {path}" for method, path in routes if f"`{method} {path}`" not in text)
    assert not missing, f"routes the app serves that docs/api.md does not describe: {missing}"
    documented = set(re.findall(r"^#{3,4} `([A-Z]+) (/\S*)`$", text, re.M))
    assert documented == routes, f"docs/api.md describes routes the app does not have: {sorted(documented - routes)}"


async def test_every_field_parameter_header_and_status_of_the_openapi_document_is_in_the_reference(
        client: TestClient) -> None:  # type: ignore[type-arg]
    answer = await client.get("/api/openapi.json")
    assert answer.status == 200
    document = await answer.json()
    names: set[str] = set()
    statuses: set[str] = set()
    for schema in document["components"]["schemas"].values():
        names |= set(schema.get("properties", {}))
    for operations in document["paths"].values():
        for operation in operations.values():
            names |= {p["name"] for p in operation.get("parameters", []) if p["in"] != "path"}
            for status, reply in operation.get("responses", {}).items():
                statuses.add(status)
                names |= set(reply.get("headers", {}))
    text = api_md()
    tokens = code_tokens(text)
    chunks = code(text)
    # A bracketed name (`filter[status]`) is no single token: it is documented when a code span holds it.
    missing = sorted(name for name in names if name not in tokens
                     and not ("[" in name and any(name in chunk for chunk in chunks)))
    assert not missing, f"fields, parameters and headers of the API missing from docs/api.md: {missing}"
    missing_statuses = sorted(s for s in statuses if f"`{s}`" not in text)
    assert not missing_statuses, f"statuses the API answers that docs/api.md does not give: {missing_statuses}"
    assert len(names) > 60 and len(statuses) > 10


def _job_failed_names() -> set[str]:
    """``JobFailed`` and every subclass of it, wherever in ``tasks`` it is defined."""
    for module in pkgutil.walk_packages(tasks.__path__, "tasks."):
        importlib.import_module(module.name)
    found, todo = set(), [tasks.errors.JobFailed]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo += cls.__subclasses__()
    return found


def _constants(node: ast.AST | None) -> list[str]:
    """The string constants an expression can be: a constant, or either branch of ``a if c else b``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _constants(node.body) + _constants(node.orelse)
    return []


def _called(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _codes_in(node: ast.AST, classes: set[str], in_errors_module: bool) -> list[str]:
    """The error codes one syntax node gives a job (see ``error_codes_in_the_code``)."""
    if isinstance(node, ast.Call):
        name = _called(node)
        values = []
        if name == "JobFailed" or (name == "__init__" and in_errors_module):
            values += _constants(node.args[0] if node.args else None)
        if name in classes:
            values += [v for kw in node.keywords if kw.arg == "code" for v in _constants(kw.value)]
        return values
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        positional = node.args.posonlyargs + node.args.args
        pairs = list(zip(positional[len(positional) - len(node.args.defaults):], node.args.defaults, strict=True))
        pairs += [(arg, d) for arg, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d]
        return [v for arg, default in pairs if arg.arg == "code" for v in _constants(default)]
    if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "code" for t in node.targets):
        return _constants(node.value)
    return []


def error_codes_in_the_code() -> dict[str, str]:
    """Every ``error.code`` a job can end with -> a file that raises it.

    Read from the source: the first argument of ``JobFailed(...)`` and of a subclass's
    ``super().__init__(...)``, any ``code=`` given to a ``JobFailed`` class, a ``code`` parameter's
    default and a ``code = ...`` assignment; and the values of any enum of codes in ``tasks.errors``.
    """
    classes = _job_failed_names()
    found: dict[str, str] = {}
    for path in sorted((ROOT / "tasks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for value in _codes_in(node, classes, path.name == "errors.py"):
                if ERROR_CODE.match(value):
                    found.setdefault(value, str(path.relative_to(ROOT)))
    for kind in vars(tasks.errors).values():  # an enum of the codes, should the code keep one
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            found.update({str(member.value): "tasks/errors.py" for member in kind if isinstance(member.value, str)})
    return found


def test_the_reference_lists_every_job_error_code_the_code_raises_and_no_other() -> None:
    raised = error_codes_in_the_code()
    rows = table_rows(section(api_md(), ERROR_CODE_SECTION))
    listed = {row[0].strip("`") for row in rows}
    missing = {code_: where for code_, where in raised.items() if code_ not in listed}
    assert not missing, f"job error codes the code raises, missing from docs/api.md's table: {missing}"
    stale = sorted(listed - set(raised))
    assert not stale, f"docs/api.md lists error codes the code never raises: {stale}"
    assert len(raised) >= 15  # the contract's fifteen and authq's own
