"""Every public module declares its public names (``__all__``), and each of them exists."""

from __future__ import annotations

import ast
import importlib

import pytest
from test_import_graph import module_files

PUBLIC = {
    name: path
    for name, path in module_files().items()
    if not any(part.startswith("_") for part in name.split("."))
}


def _declared_all(path) -> list[str] | None:
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(node.value))
    return None


def test_every_public_module_has_all():
    missing = [name for name, path in PUBLIC.items() if _declared_all(path) is None]
    assert not missing, f"modules without __all__: {missing}"


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_name_in_all_exists(module):
    names = _declared_all(PUBLIC[module]) or []
    assert len(names) == len(set(names)), f"{module}.__all__ repeats a name"
    mod = importlib.import_module(module)
    absent = [n for n in names if not hasattr(mod, n)]
    assert not absent, f"{module}.__all__ names what it does not define: {absent}"
