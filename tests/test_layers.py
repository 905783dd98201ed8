"""The layout shows the architecture, and the imports keep it: each layer imports only those below it, and no cycle.

    http      views, pages, HTTP schemas, problem handlers    (Flask)
    runtime   what a running process keeps: caches, limiters, helper processes, threads
    services  use cases, knowing neither Flask nor HTTP
    store     tables, engines and sessions, the fast read path
    domain, crypto    pure rules and cryptography

Read from the source with ``ast``, every import, also those inside functions:
an import made late to dodge a cycle is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "registry"

# What each part of the registry may import of the registry (a prefix: the module itself or its submodules).
ALLOWED = {
    "registry.crypto": {"registry.crypto"},
    "registry.domain": {"registry.domain"},
    "registry.errors": set(),
    "registry.clock": {"registry.domain"},
    "registry.config": set(),
    "registry.keyring": {"registry.crypto"},
    "registry.store": {"registry.store", "registry.crypto", "registry.config"},
    "registry.services": {"registry.services", "registry.store", "registry.domain", "registry.crypto",
                          "registry.errors", "registry.keyring", "registry.offline"},
    "registry.runtime": {"registry.runtime", "registry.services", "registry.store", "registry.domain",
                         "registry.crypto", "registry.errors", "registry.keyring", "registry.config",
                         "registry.clock"},
    "registry.offline": {"registry.crypto", "registry.domain"},
    "registry.monitor": {"registry.crypto", "registry.domain", "registry.offline"},
    "registry.witness": {"registry.witness", "registry.crypto"},
}
# Frameworks only the upper floors may use.
FRAMEWORKS = {
    "flask": {"registry.http", "registry.runtime", "registry.app", "registry.cli"},
    "flask_smorest": {"registry.http"},
    "werkzeug": {"registry.http", "registry.app", "registry.witness"},
    "sqlalchemy": {"registry.store", "registry.services", "registry.runtime", "registry.http", "registry.cli",
                   "registry.app"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> list[str]:
    """The registry modules (and other top-level packages) that ``path`` imports, relative ones resolved.

    ``from . import x`` names module ``x`` if there is one, else the package
    whose ``__init__`` defines ``x``.
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target
                      for alias in node.names]
    return found


def _layer(module: str, table: dict) -> str | None:
    return next((prefix for prefix in sorted(table, key=len, reverse=True)
                 if module == prefix or module.startswith(prefix + ".")), None)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_what_its_layer_may(module):
    layer = _layer(module, ALLOWED)
    wrong = []
    for target in _imports(MODULES[module]):
        root = target.split(".")[0]
        if root in FRAMEWORKS and _layer(module, dict.fromkeys(FRAMEWORKS[root])) is None:
            wrong.append(target)
        if (layer is not None and target.startswith("registry.") and target in MODULES
                and _layer(target, dict.fromkeys(ALLOWED[layer])) is None):
            wrong.append(target)
    assert not wrong, f"{module} ({layer or 'upper floor'}) imports {sorted(set(wrong))}"


def test_no_import_cycle():
    graph = {module: {target for target in _imports(path) if target in MODULES and target != module}
             for module, path in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(target):], target]))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
