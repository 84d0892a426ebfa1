"""What every notebook's exercise checker promises, as assertions the per-notebook tests share: the reference
solution passes, an untouched stub is "not attempted yet", and a typical wrong answer fails with the hint that
names its mistake (not a bare expected/got)."""

from __future__ import annotations

from collections.abc import Callable


def stub(*args, **kwargs):
    """An exercise the student has not touched yet."""
    raise NotImplementedError("Exercise")


def assert_solution_passes_and_stub_is_not_attempted(k: int, check: Callable, solution: Callable, capsys) -> None:
    assert check(solution) is True
    assert f"Exercise {k}: correct" in capsys.readouterr().out
    assert check(stub) is None
    assert f"Exercise {k}: not attempted yet" in capsys.readouterr().out


def assert_wrong_answer_gets_its_hint(k: int, check: Callable, wrong: Callable, hint: str, capsys) -> None:
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert f"Exercise {k}: not yet" in out and hint in out, out
