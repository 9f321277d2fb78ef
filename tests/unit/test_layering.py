"""The layering rules, read from the source with ``ast``: what each package may not import.

``tasks/`` is the job logic, free of any framework: it imports neither aiohttp, Celery nor kombu,
nor any of authq's other packages (``api``, ``worker``, ``authq``). ``api/`` never imports
``worker/``: the API reaches the workers only through the ``JobQueue`` port it is handed.

Every import counts wherever it stands: at the top, inside a function, under
``if TYPE_CHECKING:``, and ``importlib.import_module("…")`` with a literal name. Relative
imports are resolved against the module's own package. The scanner is itself tested on a
planted package, so a scanner that found nothing would fail here rather than pass quietly.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.helpers import ROOT

# package folder -> the top-level modules nothing under it may import
FORBIDDEN: dict[str, frozenset[str]] = {
    "tasks": frozenset({"aiohttp", "celery", "kombu", "api", "worker", "authq"}),
    "api": frozenset({"worker"}),
}


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the scanned root
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}"


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import …`` written in ``module``."""
    if level == 0:
        return name or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, name] if name else base)


def imports_of(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the module at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    module, is_package = module_name(root, path), path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            yield node.lineno, base
            if node.module is None:  # ``from . import x``: x may be a module of that package
                for alias in node.names:
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_import_module(func: ast.expr) -> bool:
    """``importlib.import_module``, ``import_module`` (imported from importlib) or ``__import__``."""
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}


def violations(root: Path, forbidden: dict[str, frozenset[str]] = FORBIDDEN) -> list[Violation]:
    found = []
    for package, banned in forbidden.items():
        for path in sorted((root / package).rglob("*.py")):
            for line, imported in imports_of(root, path):
                if imported.split(".")[0] in banned:
                    found.append(Violation(str(path.relative_to(root)), line, imported))
    return found


def test_tasks_and_api_import_nothing_their_layer_forbids() -> None:
    scanned = [path for package in FORBIDDEN for path in (ROOT / package).rglob("*.py")]
    assert len(scanned) > 50  # the real packages were found, not an empty folder
    found = violations(ROOT)
    assert not found, "layering broken:\n" + "\n".join(map(str, found))


def test_the_scanner_finds_every_kind_of_planted_import(tmp_path: Path) -> None:
    files = {
        "tasks/__init__.py": "",
        "tasks/flows/__init__.py": "",
        "tasks/flows/plain.py": "import celery\n",
        "tasks/flows/dotted.py": "import os\nimport kombu.entity as entity\n",
        "tasks/flows/member.py": "from aiohttp import web\n",
        "tasks/flows/late.py": "def run() -> None:\n    from worker.tasks import register_run_job\n",
        "tasks/flows/typing_only.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from api.app import make_app\n"
        ),
        "tasks/flows/dynamic.py": "import importlib\nimportlib.import_module('authq.cli')\n",
        # Not violations: a module of tasks' own named like a framework, and look-alike names.
        "tasks/flows/celery.py": "",
        "tasks/flows/local.py": "from . import celery\nfrom .celery import x\nimport celeryish\nimport apis\n",
        "api/__init__.py": "",
        "api/views/__init__.py": "from ..views import jobs\n",
        "api/views/jobs.py": "import tasks.jobs\nimport worker\n",
        "worker/__init__.py": "import aiohttp\nimport api\n",  # worker may import anything
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")

    found = {(v.path, v.line, v.imported) for v in violations(tmp_path)}

    assert found == {
        ("tasks/flows/plain.py", 1, "celery"),
        ("tasks/flows/dotted.py", 2, "kombu.entity"),
        ("tasks/flows/member.py", 1, "aiohttp"),
        ("tasks/flows/late.py", 2, "worker.tasks"),
        ("tasks/flows/typing_only.py", 3, "api.app"),
        ("tasks/flows/dynamic.py", 2, "authq.cli"),
        ("api/views/jobs.py", 2, "worker"),
    }


def test_relative_imports_resolve_against_the_module_s_package(tmp_path: Path) -> None:
    init, module = tmp_path / "tasks" / "flows" / "__init__.py", tmp_path / "tasks" / "flows" / "oauth2.py"
    init.parent.mkdir(parents=True)
    init.write_text("from . import oauth2\nfrom .. import errors\n", encoding="utf-8")
    module.write_text("from . import basic\nfrom ..storage.schema import job\nfrom .. import errors\n",
                      encoding="utf-8")

    assert sorted(imports_of(tmp_path, init)) == [
        (1, "tasks.flows"), (1, "tasks.flows.oauth2"), (2, "tasks"), (2, "tasks.errors")]
    assert sorted(imports_of(tmp_path, module)) == [
        (1, "tasks.flows"), (1, "tasks.flows.basic"), (2, "tasks.storage.schema"), (3, "tasks"), (3, "tasks.errors")]
