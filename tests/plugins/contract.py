"""The hook documentation/test contract, as plain functions so it can itself be tested.

A hook is in order when ``docs/plugin-authors.md`` shows its exact signature (a Python
code block holding just its ``def archnest_...(...) -> ...:`` header, parameters and
annotations as in the hookspec) and some test under ``tests/`` is named after it
(``test_<hook name>`` or ``test_<hook name>_...``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

SPEC_MARK = "archnest_spec"  # the attribute pluggy.HookspecMarker("archnest") sets
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Signature:
    params: tuple[tuple[str, str], ...]  # (name, annotation) in order
    returns: str

    def render(self, name: str) -> str:
        args = ", ".join(f"{n}: {a}" if a else n for n, a in self.params)
        return f"def {name}({args}) -> {self.returns}"


def _from_def(node: ast.FunctionDef) -> Signature:
    def norm(expr: ast.expr | None) -> str:
        # Round-trip through ast so spacing and line breaks do not matter.
        return ast.unparse(expr) if expr is not None else ""

    params = tuple((a.arg, norm(a.annotation)) for a in node.args.args if a.arg != "self")
    return Signature(params, norm(node.returns))


def hookspec_signatures(module: ModuleType, source: str) -> dict[str, Signature]:
    """Signatures of the functions of ``module`` marked as hookspecs."""
    marked = {name for name, obj in vars(module).items() if hasattr(obj, SPEC_MARK)}
    return {
        node.name: _from_def(node)
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name in marked
    }


def documented_signatures(markdown: str) -> dict[str, Signature]:
    """Reference signatures in ``markdown``: Python code blocks holding nothing but one
    ``def archnest_...(...) -> ...:`` header (examples with bodies do not count)."""
    found: dict[str, Signature] = {}
    for block in CODE_BLOCK.findall(markdown):
        header = block.strip()
        if not header.startswith("def archnest_") or not header.endswith(":"):
            continue
        try:
            tree = ast.parse(header + "\n    ...\n")
        except SyntaxError:
            continue
        node = tree.body[0]
        if len(tree.body) == 1 and isinstance(node, ast.FunctionDef):
            found.setdefault(node.name, _from_def(node))
    return found


def tested_hooks(tests_dir: Path, hook_names: set[str]) -> set[str]:
    """Hook names that have a test function named after them under ``tests_dir``."""
    covered: set[str] = set()
    for path in tests_dir.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for hook in hook_names:
                    if node.name == f"test_{hook}" or node.name.startswith(f"test_{hook}_"):
                        covered.add(hook)
    return covered


def contract_problems(module: ModuleType, source: str, markdown: str, tests_dir: Path) -> list[str]:
    """One line per broken promise; empty when every hook is documented and tested."""
    specs = hookspec_signatures(module, source)
    docs = documented_signatures(markdown)
    tested = tested_hooks(tests_dir, set(specs))
    problems: list[str] = []
    for name, sig in sorted(specs.items()):
        doc = docs.get(name)
        if doc is None:
            problems.append(f"{name}: no documented signature in plugin-authors.md")
        elif doc != sig:
            problems.append(
                f"{name}: documented as `{doc.render(name)}` but the hookspec is "
                f"`{sig.render(name)}`"
            )
        if name not in tested:
            problems.append(f"{name}: no test named test_{name}")
    for name in sorted(set(docs) - set(specs)):
        problems.append(f"{name}: documented but not a hook")
    return problems
