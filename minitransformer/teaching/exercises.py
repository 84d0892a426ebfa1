"""Exercise checkers for the notebooks: a stub, then a check cell.

    def exercise_1(x):
        raise NotImplementedError("Exercise 1")     # the student replaces this line

    check(1, lambda: exercise_1(x), expected=x.T)                 # compare one answer
    check_fn(2, exercise_2, reference_2, cases=[(x,), (y,)])      # compare a function on several inputs

What a checker does:
- a stub (`NotImplementedError`) prints `Exercise 1: not attempted yet` and returns None, so a notebook with
  untouched stubs still runs top to bottom (CI runs them that way);
- a right answer prints `Exercise 1: correct` and returns True;
- a wrong answer prints `Exercise 1: not yet — expected <...>, got <...>` and returns False; it never raises;
- any other exception from the student's code is *not* swallowed: it propagates unchanged, after a line
  saying which exercise raised it, and with a note added to the traceback. A crash is a bug to read.

Comparison (`mismatch`): numbers with `math.isclose(atol, rtol)`; tensors (and numpy arrays) shape first,
then values with `torch.allclose`; tuples/lists/dicts recursively (the message gives the path, e.g.
`[1]['q']`); strings, bools and everything else with `==`. Per-notebook checkers build on these two.
"""

from __future__ import annotations

import contextlib
import copy
import math
import reprlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist, _short.maxdict = 60, 60, 6, 6


def _is_number(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, (int, float)) or (type(x).__module__ == "numpy" and getattr(x, "ndim", 1) == 0)


def _as_tensor(x: Any) -> torch.Tensor | None:
    if isinstance(x, torch.Tensor):
        return x
    if type(x).__module__ == "numpy" and hasattr(x, "shape"):
        return torch.as_tensor(x)
    return None


def short(x: Any) -> str:
    """A one-line repr: tensors as shape and their first few values."""
    t = _as_tensor(x)
    if t is not None and not _is_number(x):
        flat = t.detach().flatten()[:6].tolist()
        vals = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat)
        more = ", ..." if t.numel() > 6 else ""
        return f"tensor of shape {tuple(t.shape)} [{vals}{more}]"
    return _short.repr(x)


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index of position `flat` in a row-major tensor of `shape` (torch.unravel_index costs seconds on its
    first call)."""
    idx = []
    for size in reversed(shape):
        flat, j = divmod(flat, size)
        idx.append(j)
    return tuple(reversed(idx))


def mismatch(expected: Any, got: Any, atol: float = 1e-6, rtol: float = 0.0, path: str = "") -> str | None:
    """None when `got` matches `expected`, else a short description of the first difference."""
    where = f" at {path}" if path else ""
    if isinstance(got, torch.Tensor) and got.dim() == 0 and _is_number(expected):
        got = got.item()  # a 0-d tensor answers a number
    if isinstance(expected, bool):  # True is not 1 here: a yes/no question wants a bool
        return None if isinstance(got, bool) and got == expected else f"expected {expected}{where}, got {short(got)}"
    if _is_number(expected):
        if not _is_number(got):
            return f"expected a number{where}: {short(expected)}, got {type(got).__name__} {short(got)}"
        if math.isclose(float(expected), float(got), abs_tol=atol, rel_tol=rtol) or (math.isnan(expected) and math.isnan(got)):
            return None
        return f"expected {short(expected)}{where}, got {short(got)}"
    t_exp = _as_tensor(expected)
    if t_exp is not None:
        t_got = _as_tensor(got)
        if t_got is None:
            return f"expected a tensor of shape {tuple(t_exp.shape)}{where}, got {type(got).__name__} {short(got)}"
        if t_exp.shape != t_got.shape:
            return f"expected a tensor of shape {tuple(t_exp.shape)}{where}, got shape {tuple(t_got.shape)}"
        a, b = t_exp.detach().cpu().double(), t_got.detach().cpu().double()
        if torch.allclose(b, a, atol=atol, rtol=rtol, equal_nan=True):
            return None
        i = int((~torch.isclose(b, a, atol=atol, rtol=rtol, equal_nan=True)).flatten().nonzero()[0])
        idx = _unravel(i, tuple(a.shape))
        return (f"expected {short(expected)}{where}, got {short(got)} "
                f"(first difference at index {idx}: {a.flatten()[i].item():.6g} vs {b.flatten()[i].item():.6g})")
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            n = f"of length {len(got)}" if isinstance(got, (tuple, list)) else short(got)
            return f"expected a {type(expected).__name__} of length {len(expected)}{where}, got {type(got).__name__} {n}"
        for i, (e, g) in enumerate(zip(expected, got)):
            if (m := mismatch(e, g, atol, rtol, f"{path}[{i}]")) is not None:
                return m
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            keys = sorted(map(str, got)) if isinstance(got, dict) else short(got)
            return f"expected a dict with keys {sorted(map(str, expected))}{where}, got {keys}"
        for key in expected:
            if (m := mismatch(expected[key], got[key], atol, rtol, f"{path}[{key!r}]")) is not None:
                return m
        return None
    return None if expected == got else f"expected {short(expected)}{where}, got {short(got)}"


def _report(k: int | str, result: str | None, describe: str) -> bool:
    note = f" ({describe})" if describe else ""
    print(f"Exercise {k}: correct{note}" if result is None else f"Exercise {k}: not yet — {result}{note}")
    return result is None


def _call(k: int | str, fn: Callable, *args, **kwargs) -> tuple[bool, Any]:
    """(attempted, value). A stub gives (False, None); a tripwire's `Forbidden` passes through; any other
    exception propagates, labelled."""
    try:
        return True, fn(*args, **kwargs)
    except NotImplementedError:
        return False, None
    except Forbidden:
        raise
    except Exception as e:
        print(f"Exercise {k}: your code raised {type(e).__name__}: {e}")
        if hasattr(e, "add_note"):  # Python >= 3.11: the note shows under the traceback
            e.add_note(f"(raised inside the code of Exercise {k})")
        raise


def check(k: int | str, attempt: Callable[[], Any], expected: Any, *, atol: float = 1e-6, rtol: float = 0.0,
          describe: str = "") -> bool | None:
    """Call `attempt()` and compare with `expected`. None = not attempted (stub), True = correct, False = not yet."""
    attempted, got = _call(k, attempt)
    if not attempted:
        print(f"Exercise {k}: not attempted yet")
        return None
    return _report(k, mismatch(expected, got, atol, rtol), describe)


def check_fn(k: int | str, student_fn: Callable, reference_fn: Callable, cases: list, *, atol: float = 1e-6,
             rtol: float = 0.0, describe: str = "") -> bool | None:
    """Run `student_fn` and `reference_fn` on every case (a tuple of positional args, or a dict of keyword
    args; anything else is one argument) and report the first case where they differ.
    Each call gets its own deep copy of the arguments, so an in-place edit cannot leak into the other."""
    for i, case in enumerate(cases):
        args, kwargs = ((), case) if isinstance(case, dict) else (case, {}) if isinstance(case, tuple) else ((case,), {})
        attempted, got = _call(k, student_fn, *copy.deepcopy(args), **copy.deepcopy(kwargs))
        if not attempted:
            print(f"Exercise {k}: not attempted yet")
            return None
        want = reference_fn(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        if (m := mismatch(want, got, atol, rtol)) is not None:
            shown = ", ".join([short(a) for a in args] + [f"{n}={short(v)}" for n, v in kwargs.items()])
            return _report(k, f"on case {i} ({shown}): {m}", describe)
    return _report(k, None, describe)


# ---- build-it-yourself exercises: tripwires, hints keyed to the usual mistakes ------------------------------
class Forbidden(Exception):
    """Raised by a tripwire: the student's code called a function that answers the exercise by itself."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _tripwire(name: str) -> Callable:
    def wire(*args, **kwargs):
        raise Forbidden(name)
    return wire


@contextlib.contextmanager
def tripwires(student_fn: Callable, forbidden: Sequence[tuple[object, str, str]]) -> Iterator[None]:
    """Replace each `owner.attr` (called `name` in the message) of `forbidden = [(owner, attr, name)]` by a
    tripwire while the student's code runs, and any global of the student's function that *is* one of those
    objects (a name imported into the notebook, e.g. `from minitransformer.core import mean_pool`)."""
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in forbidden]
    names = {id(orig): name for (_, _, orig), (_, _, name) in zip(saved, forbidden)}
    glob = getattr(student_fn, "__globals__", {})
    shadowed = {key: value for key, value in glob.items() if id(value) in names}
    try:
        for owner, attr, name in forbidden:
            setattr(owner, attr, _tripwire(name))
        for key, value in shadowed.items():
            glob[key] = _tripwire(names[id(value)])
        yield
    finally:
        for owner, attr, orig in saved:
            setattr(owner, attr, orig)
        glob.update(shadowed)


def run_student(k: int | str, fn: Callable, args: tuple, forbidden: Sequence = (), *,
                no_grad: bool = False) -> tuple[str, Any]:
    """("stub", None), ("forbidden", name) or ("ok", value). Any other exception propagates, labelled."""
    try:
        with tripwires(fn, forbidden), torch.no_grad() if no_grad else contextlib.nullcontext():
            attempted, value = _call(k, fn, *args)
    except Forbidden as e:
        return "forbidden", e.name
    return ("ok", value) if attempted else ("stub", None)


def check_parity(k: int | str, student_fn: Callable, reference: Callable, cases: list[tuple],
                 hints: Sequence[tuple[str, Callable]] = (), *, forbidden: Sequence = (), describe: str = "",
                 atol: float = 1e-6, variant_atol: float = 1e-5, prepare: Callable = copy.deepcopy,
                 shape_hint: Callable | None = None, build_from: str = "", no_grad: bool = False) -> bool | None:
    """Run the student's function and `reference` on every case (each call on its own `prepare(case)`, a deep
    copy by default). On the first difference, name the common mistake: `shape_hint(case, want, got)` if it
    returns a message, else the first `(message, wrong_fn)` of `hints` whose output the student's equals (to
    `variant_atol`: a different order of float operations is allowed), else the first differing value.
    None = not attempted, True = correct, False = not yet (with the message)."""
    grad = torch.no_grad if no_grad else contextlib.nullcontext
    for i, case in enumerate(cases):
        status, got = run_student(k, student_fn, prepare(case), forbidden, no_grad=no_grad)
        if status == "stub":
            print(f"Exercise {k}: not attempted yet")
            return None
        if status == "forbidden":
            how = f" with {build_from}" if build_from else ""
            print(f"Exercise {k}: not yet — your code called {got}, which does the exercise for you; "
                  f"write the steps yourself{how}")
            return False
        with grad():
            want = reference(*prepare(case))
        m = mismatch(want, got, atol)
        if m is None:
            continue
        hint = shape_hint(case, want, got) if shape_hint is not None else None
        for message, wrong in hints if hint is None else ():
            with grad():
                candidates = wrong(*prepare(case))
            # a hint may stand for several wrong answers (a list), unless the answer itself is a list
            candidates = candidates if isinstance(candidates, list) and not isinstance(want, list) else [candidates]
            if any(mismatch(c, got, max(atol, variant_atol)) is None for c in candidates):
                hint = message
                break
        shown = ", ".join(_describe_arg(a) for a in case)
        print(f"Exercise {k}: not yet — on case {i} ({shown}): {hint or m}")
        return False
    print(f"Exercise {k}: correct" + (f" ({describe})" if describe else ""))
    return True


def _describe_arg(a: object) -> str:
    if isinstance(a, torch.Tensor):
        return short(a)
    return type(a).__name__ if isinstance(a, (dict, torch.nn.Module)) else repr(a)


def check_choice(k: int | str, prediction: Callable[[], Any], measured: dict[Any, float], why: str, *,
                 higher_wins: bool = True, unit: str = "") -> bool | None:
    """A prediction measured by the next cell: `prediction()` names one of the keys of `measured` (the options,
    each with the number the notebook measured for it); it is right when its option has the highest number
    (`higher_wins=False`: the lowest). `why` is printed with the verdict either way — the point of a prediction
    exercise is the reason, not the guess. None = not attempted, True = right, False = not yet; never raises
    on a wrong answer."""
    attempted, got = _call(k, prediction)
    if not attempted:
        print(f"Exercise {k}: not attempted yet")
        return None
    if got not in measured:
        print(f"Exercise {k}: not yet — answer one of {', '.join(map(repr, measured))}, got {short(got)}")
        return False
    best = (max if higher_wins else min)(measured.values())
    shown = ", ".join(f"{key!r}: {value:.4g}{unit}" for key, value in measured.items())
    if measured[got] == best:
        print(f"Exercise {k}: correct (measured {shown}) — {why}")
        return True
    winner = next(key for key, value in measured.items() if value == best)
    print(f"Exercise {k}: not yet — measured {shown}: {winner!r} wins. {why}")
    return False
