"""The generic exercise checker: stub -> None, right -> True, wrong -> False with a useful message."""

from __future__ import annotations

import pytest
import torch

from minitransformer.teaching.exercises import check, check_fn, mismatch, short


def stub():
    raise NotImplementedError("Exercise 1")


def test_stub_is_not_attempted(capsys):
    assert check(1, stub, 3) is None
    assert capsys.readouterr().out.strip() == "Exercise 1: not attempted yet"
    assert check_fn("2a", lambda x: stub(), lambda x: x, [(1,)]) is None
    assert "Exercise 2a: not attempted yet" in capsys.readouterr().out


def test_right_and_wrong_numbers(capsys):
    assert check(1, lambda: 0.1 + 0.2, 0.3) is True
    assert capsys.readouterr().out.strip() == "Exercise 1: correct"
    assert check(1, lambda: 3.0, 3) is True  # a float answers an int
    assert check(1, lambda: torch.tensor(2.5), 2.5) is True  # so does a 0-d tensor
    assert check(2, lambda: 0.31, 0.3, describe="sum") is False
    assert capsys.readouterr().out.splitlines()[-1] == "Exercise 2: not yet — expected 0.3, got 0.31 (sum)"
    assert check(3, lambda: 101, 100, atol=0, rtol=0.02) is True
    assert check(4, lambda: "3", 3) is False
    assert check(5, lambda: True, True) is True and check(5, lambda: 1, True) is False


def test_tensors_shape_then_values(capsys):
    x = torch.arange(6.0).view(2, 3)
    assert check(1, lambda: x.clone(), x) is True
    assert check(1, lambda: x.T, x) is False
    out = capsys.readouterr().out
    assert "(2, 3)" in out and "(3, 2)" in out
    assert check(1, lambda: x + 1e-3, x) is False
    assert "first difference at index (0, 0)" in capsys.readouterr().out
    assert check(1, lambda: x + 1e-3, x, atol=1e-2) is True
    assert check(1, lambda: x.tolist(), x) is False
    assert "expected a tensor of shape (2, 3), got list" in capsys.readouterr().out


def test_nested_structures_report_the_path():
    e = {"q": (torch.zeros(2), 1), "v": [1.0, "a"]}
    assert mismatch(e, {"q": (torch.zeros(2), 1), "v": [1.0, "a"]}) is None
    assert "at ['q'][0]" in mismatch(e, {"q": (torch.zeros(3), 1), "v": [1.0, "a"]})
    assert "at ['v'][1]" in mismatch(e, {"q": (torch.zeros(2), 1), "v": [1.0, "b"]})
    assert "keys" in mismatch(e, {"q": 1})
    assert "length 2" in mismatch((1, 2), (1, 2, 3))


def test_short_reprs_stay_short():
    assert short(torch.arange(100)).startswith("tensor of shape (100,) [0, 1, 2, 3, 4, 5, ...")
    assert len(short("x" * 1000)) < 80


def test_check_fn_reports_the_first_failing_case(capsys):
    def ref(x, scale=1.0):
        return x * scale

    assert check_fn(3, ref, ref, [(torch.ones(2),), {"x": torch.ones(2), "scale": 2.0}, 5]) is True

    def wrong(x, scale=1.0):
        return x * scale if isinstance(x, int) else x

    assert check_fn(3, wrong, ref, [(torch.ones(2),), {"x": torch.ones(2), "scale": 2.0}]) is False
    assert "on case 1 (x=tensor of shape (2,)" in capsys.readouterr().out

    def in_place(x):
        return x.mul_(2)  # edits its argument: the reference must still see the original

    assert check_fn(3, in_place, lambda x: x * 2, [(torch.ones(2),)]) is True


def test_other_exceptions_propagate_with_the_exercise_number(capsys):
    with pytest.raises(ZeroDivisionError) as info:
        check(7, lambda: 1 / 0, 1)
    assert "Exercise 7: your code raised ZeroDivisionError" in capsys.readouterr().out
    assert any("Exercise 7" in n for n in getattr(info.value, "__notes__", ["Exercise 7"]))


def test_check_choice(capsys):
    from minitransformer.teaching.exercises import check_choice
    measured = {"merged": 1.0, "unmerged": 1.4}
    assert check_choice(7, lambda: "unmerged", measured, "two matmuls") is True
    assert "Exercise 7: correct" in capsys.readouterr().out
    assert check_choice(7, lambda: "merged", measured, "two matmuls") is False
    out = capsys.readouterr().out
    assert "not yet" in out and "'unmerged' wins" in out and "two matmuls" in out
    assert check_choice(7, lambda: "merged", measured, "one matmul", higher_wins=False) is True
    assert check_choice(7, lambda: "neither", measured, "") is False
    assert "answer one of" in capsys.readouterr().out
    assert check_choice(7, lambda: (_ for _ in ()).throw(NotImplementedError()), measured, "") is None
    assert "not attempted yet" in capsys.readouterr().out
