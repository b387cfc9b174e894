"""The layers of the code, enforced by reading every import (module level, inside functions and
under TYPE_CHECKING alike: a lazy or type-only import upward is still an arrow the wrong way).

    core  <-  errors  <-  storage  <-  config, logging_setup  <-  books, market, notify
          <-  brokers, gateway_sim  <-  engine  <-  backtest, remote  <-  cli  <-  __main__

A package may import its own modules and any package in a lower layer, never one in its own layer
or above. `core/` imports nothing from outside itself. No module imports itself back through a
circle of other modules (an order's path from signal to journal crosses each room once, downward).
ruff's banned-api (pyproject.toml) keeps typer/rich in cli/ and ib_async in brokers/ibkr/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "tradebot"

# Lowest first. `tradebot` is the package's own __init__ (the version only).
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"tradebot"}),
    frozenset({"core"}),
    frozenset({"errors"}),
    frozenset({"storage"}),
    frozenset({"config", "logging_setup"}),
    frozenset({"books", "market", "notify"}),
    frozenset({"brokers", "gateway_sim"}),
    frozenset({"engine"}),
    frozenset({"backtest", "remote"}),
    frozenset({"cli"}),
    frozenset({"__main__"}),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    """The top-level room of `tradebot.x.y` (`x`), or `tradebot` for the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tradebot"


def imports_of(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, imported tradebot module) for every import statement anywhere in `source`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "tradebot" or base.startswith("tradebot."):
                yield node.lineno, base
                for alias in node.names:  # `from tradebot.books import halt` imports a module
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "tradebot" or alias.name.startswith("tradebot."):
                    yield node.lineno, alias.name


def all_modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def layer_violations(package: Path = PACKAGE) -> list[str]:
    modules = all_modules(package)
    problems = []
    for name, path in modules.items():
        here = unit_of(name)
        seen: set[tuple[int, str]] = set()
        for line, target in imports_of(path.read_text(encoding="utf-8"), name):
            if target not in modules:
                continue  # a name imported from a module, not a module
            there = unit_of(target)
            if there == here or (line, there) in seen:
                continue
            seen.add((line, there))
            if here not in RANK or there not in RANK:
                problems.append(f"{path.name}:{line}: {here} or {there} has no layer; add it")
            elif RANK[there] >= RANK[here]:
                problems.append(
                    f"{name} (line {line}) imports {target}: {here} may not import {there}"
                )
    return problems


def import_cycles(package: Path = PACKAGE) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), as sorted names."""
    modules = all_modules(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for _, target in imports_of(path.read_text(encoding="utf-8"), name):
            # `import tradebot.a.b` also runs tradebot.a's __init__, but a package's
            # __init__ importing its own modules is not a circle of dependencies.
            if target in modules and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_every_package_imports_only_lower_layers() -> None:
    assert layer_violations() == []


def test_core_imports_nothing_outside_core() -> None:
    modules = all_modules()
    outside = [
        f"{name} imports {target}"
        for name, path in modules.items()
        if unit_of(name) == "core"
        for _, target in imports_of(path.read_text(encoding="utf-8"), name)
        if unit_of(target) != "core"
    ]
    assert outside == []


def test_no_module_imports_itself_back_through_others() -> None:
    assert import_cycles() == []


def test_no_record_keeper_is_left_flat_in_the_package_root() -> None:
    """The root keeps the entry points and what every layer needs (config, errors, logging)."""
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "errors.py", "logging_setup.py"]
    assert (PACKAGE / "config" / "__init__.py").is_file()


# -- the checks themselves fail on a violation (a copy of a tiny package in tmp_path) ---------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "tradebot"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("importer", "statement"),
    [
        ("core/rules.py", "from tradebot.config import Settings\n"),
        ("books/journal.py", "def f():\n    from tradebot.engine.loop import TradingLoop\n"),
        (
            "books/journal.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from tradebot.brokers.base import Broker\n",
        ),
        ("market/model.py", "import tradebot.books.halt\n"),
        ("engine/loop.py", "from tradebot.backtest import engine\n"),
    ],
)
def test_an_upward_import_is_reported(tmp_path: Path, importer: str, statement: str) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "config/__init__.py": "Settings = 1\n",
            "engine/__init__.py": "",
            "engine/loop.py": "TradingLoop = 1\n",
            "brokers/__init__.py": "",
            "brokers/base.py": "Broker = 1\n",
            "books/__init__.py": "",
            "books/halt.py": "",
            "backtest/__init__.py": "",
            "backtest/engine.py": "",
            "core/__init__.py": "",
            "market/__init__.py": "",
            importer: statement,
        },
    )
    problems = layer_violations(root)
    assert len(problems) == 1, problems
    assert importer.split("/")[0] in problems[0]


def test_a_circle_between_modules_is_reported(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "engine/__init__.py": "",
            "engine/loop.py": "from tradebot.engine.status import View\n",
            "engine/status.py": "def f():\n    from tradebot.engine.supervisor import S\n",
            "engine/supervisor.py": "from tradebot.engine import loop\n",
        },
    )
    assert import_cycles(root) == [
        ["tradebot.engine.loop", "tradebot.engine.status", "tradebot.engine.supervisor"]
    ]
    assert layer_violations(root) == []
