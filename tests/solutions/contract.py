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


def checker_tests(checks: dict[int, Callable], solutions: dict[int, Callable], wrong: list[tuple[int, Callable, str]]):
    """The two parametrized tests every notebook's checkers share, for a test module to bind at its top level:

        test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint = checker_tests(
            CHECKS, SOLUTIONS, WRONG)

    `checks`/`solutions`: exercise number -> checker / reference solution; `wrong`: (exercise, wrong answer, words
    its hint must contain)."""
    import pytest

    @pytest.mark.parametrize("k", sorted(checks))
    def test_solution_passes_and_stub_is_not_attempted(k, capsys):
        assert_solution_passes_and_stub_is_not_attempted(k, checks[k], solutions[k], capsys)

    @pytest.mark.parametrize("k, wrong_answer, hint", wrong, ids=[f"{k}-{w.__name__}" for k, w, _ in wrong])
    def test_wrong_answer_fails_with_its_hint(k, wrong_answer, hint, capsys):
        assert_wrong_answer_gets_its_hint(k, checks[k], wrong_answer, hint, capsys)

    return test_solution_passes_and_stub_is_not_attempted, test_wrong_answer_fails_with_its_hint


def assert_every_hint_is_reachable(hints: list, cases: list, reference: Callable, atol: float = 1e-5) -> None:
    """Each common mistake differs from the right answer on some case (else its hint could never be printed). A
    mistake may return one answer or a list of candidate answers."""
    from minitransformer.teaching.exercises import mismatch

    for message, wrong in hints:
        differs = False
        for c in cases:
            candidates = wrong(*c)
            candidates = candidates if isinstance(candidates, list) else [candidates]
            differs |= any(mismatch(reference(*c), w, atol) is not None for w in candidates)
        assert differs, message
