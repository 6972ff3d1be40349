"""The layout's rules, read from the source with ast (DESIGN.md "Rules", issue 13):

- no import between the project's modules forms a cycle: every import counts, those
  under `if TYPE_CHECKING:` and inside functions included;
- dependencies run one way: the connection knows no server, no manager, no router and
  no app; a Pending knows no connection; only the command (cli.py) imports the server;
- no class is over MAX_CLASS_LINES lines.

The checkers are tested too, on small packages written for the purpose: each rule must
be able to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("httap", "gpio")
MAX_CLASS_LINES = 400


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name (a package by its own)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that module `name` imports, wherever the import stands.
    `from P import X` is an import of P.X when that is a module, else of P."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` where a.b is the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    known = modules(root, packages)
    return {name: imported(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> Optional[list[str]]:
    """One import cycle, as the modules along it (the first repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> Optional[list[str]]:
        path.append(node)
        for following in sorted(graph.get(node, ())):
            if following in path:
                return [*path[path.index(following) :], following]
            if following not in done:
                cycle = visit(following)
                if cycle:
                    return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        if node not in done:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for following in graph.get(todo.pop(), ()):
            if following not in seen:
                seen.add(following)
                todo.append(following)
    return seen


def long_classes(root: Path, packages: tuple[str, ...], limit: int) -> list[str]:
    """Each class over `limit` lines (decorators not counted), as `path:line Name: N lines`."""
    found = []
    for path in modules(root, packages).values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                if size > limit:
                    where = path.relative_to(root)
                    found.append(f"{where}:{node.lineno} {node.name}: {size} lines")
    return found


# -- the project -------------------------------------------------------------------------


def test_no_import_cycle():
    graph = import_graph(ROOT)
    assert "httap.connection" in graph["httap.server"]  # the graph is read, not empty
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_dependencies_run_one_way():
    graph = import_graph(ROOT)
    upper = ("httap.server", "httap.manager", "httap.router", "httap.app", "httap.listen")
    below = reachable(graph, "httap.connection")
    assert not [name for name in below if name.startswith(upper)]
    assert "httap.connection" not in reachable(graph, "httap.reply")
    assert "httap.connection" not in reachable(graph, "httap.logs")
    importers = {name for name, targets in graph.items() if "httap.server" in targets}
    assert importers == {"httap.cli"}


def test_no_class_over_the_limit():
    found = long_classes(ROOT, PACKAGES, MAX_CLASS_LINES)
    assert found == []


# -- the checkers can fail -----------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_type_checking_is_found(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg.high import High\n",
            "pkg/high.py": "from pkg import low\n",
        },
    )
    assert find_cycle(import_graph(tmp_path, ("pkg",))) == ["pkg.high", "pkg.low", "pkg.high"]


def test_a_cycle_through_relative_and_local_imports_is_found(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from . import a\n",
            "pkg/sub/a.py": "def f():\n    from ..b import g\n",
            "pkg/b.py": "import pkg.sub\n",
        },
    )
    cycle = find_cycle(import_graph(tmp_path, ("pkg",)))
    assert cycle is not None and set(cycle) == {"pkg.b", "pkg.sub", "pkg.sub.a"}


def test_one_way_imports_have_no_cycle(tmp_path):
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.top import Top\n",
            "pkg/top.py": "from pkg import low\nimport pkg.low\n",
            "pkg/low.py": "import os\n",
        },
    )
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {"pkg": {"pkg.top"}, "pkg.top": {"pkg.low"}, "pkg.low": set()}
    assert find_cycle(graph) is None


def test_a_class_one_line_over_the_limit_is_found(tmp_path):
    body = "    x = 1\n"
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/fits.py": "@decorated\nclass Fits:\n" + body * (MAX_CLASS_LINES - 1),
            "pkg/over.py": "class Over:\n" + body * MAX_CLASS_LINES,
        },
    )
    assert long_classes(tmp_path, ("pkg",), MAX_CLASS_LINES) == [
        f"pkg/over.py:1 Over: {MAX_CLASS_LINES + 1} lines"
    ]
