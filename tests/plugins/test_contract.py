"""Every hook has a documented signature and a test of its own; and the checker
really catches a hook added without them."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path
from types import ModuleType

import pluggy
from archnest import hookspecs

from .contract import contract_problems, documented_signatures, hookspec_signatures

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugin-authors.md"
TESTS = ROOT / "tests"


def _module_from(source: str) -> ModuleType:
    module = ModuleType("synthetic_hookspecs")
    exec(compile(source, "synthetic_hookspecs.py", "exec"), module.__dict__)
    return module


def test_every_hook_is_documented_and_tested() -> None:
    problems = contract_problems(hookspecs, inspect.getsource(hookspecs), GUIDE.read_text(), TESTS)
    assert problems == []


def test_every_hook_has_a_docstring() -> None:
    specs = hookspec_signatures(hookspecs, inspect.getsource(hookspecs))
    assert len(specs) >= 8
    missing = [n for n in specs if not (getattr(hookspecs, n).__doc__ or "").strip()]
    assert missing == []


def test_checker_fails_on_a_hook_added_without_docs_or_test() -> None:
    source = inspect.getsource(hookspecs) + textwrap.dedent(
        '''

        @hookspec
        def archnest_brand_new(app: web.Application, depth: int) -> list[str]:
            """A hook nobody documented or tested yet."""
        '''
    )
    module = _module_from(source)
    assert isinstance(module.hookspec, pluggy.HookspecMarker)
    problems = contract_problems(module, source, GUIDE.read_text(), TESTS)
    assert problems == [
        "archnest_brand_new: no documented signature in plugin-authors.md",
        "archnest_brand_new: no test named test_archnest_brand_new",
    ]


def test_checker_fails_when_the_documented_signature_drifts() -> None:
    guide = GUIDE.read_text()
    drifted = guide.replace(
        "def archnest_nav_items(request: web.Request) -> list[NavItem]:",
        "def archnest_nav_items(request: web.Request, user: User) -> list[NavItem]:",
        1,
    )
    assert drifted != guide
    problems = contract_problems(hookspecs, inspect.getsource(hookspecs), drifted, TESTS)
    assert len(problems) == 1
    assert problems[0].startswith("archnest_nav_items: documented as `def archnest_nav_items(")


def test_documented_signatures_ignore_layout() -> None:
    one_line = "```python\ndef archnest_x(app: web.Application) -> None:\n```"
    wrapped = "```python\ndef archnest_x(\n    app: web.Application,\n) -> None:\n```"
    assert documented_signatures(one_line) == documented_signatures(wrapped) != {}
    # Only reference headers count: not other languages, not examples with a body.
    assert documented_signatures("```text\ndef archnest_x(a) -> None:\n```") == {}
    example = "```python\n@hookimpl\ndef archnest_x(app):\n    return None\n```"
    assert documented_signatures(example) == {}
