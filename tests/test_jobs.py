"""The progress / cancel protocol: a null token instead of ``None`` (issue #15 item 6)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from unmix.jobs import NO_CANCEL, Cancelled, CancelToken, iterate, no_progress

ROOT = Path(__file__).resolve().parents[1]


def test_the_null_token_is_never_cancelled_and_cannot_be():
    assert isinstance(NO_CANCEL, CancelToken)
    assert not NO_CANCEL.cancelled
    NO_CANCEL.check()
    with pytest.raises(TypeError, match="NO_CANCEL cannot be cancelled"):
        NO_CANCEL.cancel()
    assert not NO_CANCEL.cancelled


def test_iterate_runs_to_the_end_with_the_defaults_and_stops_on_a_cancelled_token():
    assert list(iterate(range(3), 3)) == [0, 1, 2]
    seen: list[float] = []
    token = CancelToken()
    out = []
    with pytest.raises(Cancelled):
        for i in iterate(range(5), 5, lambda f, m="": seen.append(f), token):
            out.append(i)
            if i == 1:
                token.cancel()
    assert out == [0, 1] and seen == [0.2, 0.4]
    no_progress(0.5, "ignored")


def _none_checks(path: Path) -> list[str]:
    """``x is (not) None`` tests of a name or attribute called ``token``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Is | ast.IsNot) for op in node.ops):
            left = node.left
            name = getattr(left, "id", getattr(left, "attr", None))
            if name == "token" and any(isinstance(c, ast.Constant) and c.value is None for c in node.comparators):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_token_is_compared_with_none():
    paths = [*ROOT.glob("core/**/*.py"), *ROOT.glob("app/**/*.py")]
    found = [hit for p in paths for hit in _none_checks(p)]
    assert not found, "use the null token (unmix.jobs.NO_CANCEL) instead:\n" + "\n".join(found)


def _none_defaults(path: Path) -> list[str]:
    """Parameters called ``progress`` or ``token`` whose default is ``None``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.posonlyargs + node.args.args
            pairs = list(zip(args[len(args) - len(node.args.defaults):], node.args.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True) if d]
            for arg, default in pairs:
                if arg.arg in ("progress", "token") and isinstance(default, ast.Constant) and default.value is None:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({arg.arg}=None)")
    return found


def test_progress_and_token_default_to_the_null_objects():
    """Every long step defaults to ``no_progress`` and ``NO_CANCEL``, never ``None`` (issue #15 item 6)."""
    paths = [*ROOT.glob("core/**/*.py"), *ROOT.glob("app/**/*.py")]
    found = [hit for p in paths for hit in _none_defaults(p)]
    assert not found, "default to unmix.jobs.no_progress / NO_CANCEL instead:\n" + "\n".join(found)


def test_labelled_progress_prefixes_messages_within_its_range():
    from unmix.jobs import labelled, sub_progress

    seen = []
    step = labelled(sub_progress(lambda f, m="": seen.append((round(f, 3), m)), 0.5, 1.0), "gusts, seed 0: hybrid")
    step(0.5, "iteration 3")
    step(1.0)
    assert seen == [(0.5, "gusts, seed 0: hybrid"), (0.75, "gusts, seed 0: hybrid – iteration 3"),
                    (1.0, "gusts, seed 0: hybrid")]
