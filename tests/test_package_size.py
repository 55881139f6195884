"""The package's size limits (developers' guide): no function over 80 lines, no class over 300.

An AST scan of every module under ``pointpillars_trt/``. A definition's length runs from its first
decorator (or its ``def``/``class`` line) to its last line, docstring and nested definitions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pointpillars_trt"
MAX_FUNCTION_LINES = 80
MAX_CLASS_LINES = 300


def definition_lengths(root: Path) -> list[tuple[str, str, int]]:
    """``(kind, "path:line name", lines)`` for every function and class under ``root``; kind is
    ``"function"`` or ``"class"``; paths relative to ``root``'s parent."""
    out = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                where = f"{path.relative_to(root.parent)}:{node.lineno} {node.name}"
                out.append((kind, where, node.end_lineno - first + 1))
    return out


def _over(kind: str, limit: int) -> list[str]:
    return [f"{where}: {n} lines" for k, where, n in definition_lengths(PACKAGE) if k == kind and n > limit]


def test_the_scan_sees_the_package():
    lengths = definition_lengths(PACKAGE)
    assert any(where.endswith(" generate_scene") for _, where, _ in lengths)
    assert sum(k == "class" for k, _, _ in lengths) > 10


def test_no_function_over_80_lines():
    over = _over("function", MAX_FUNCTION_LINES)
    assert not over, "functions over 80 lines:\n" + "\n".join(over)


def test_no_class_over_300_lines():
    over = _over("class", MAX_CLASS_LINES)
    assert not over, "classes over 300 lines:\n" + "\n".join(over)
