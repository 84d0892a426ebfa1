"""Every checker of notebook 04 passes its reference solution, rejects a wrong answer, and skips a stub."""

import pytest
from solutions import nb04

from methods.checks import nb04_bitfit as checks


def stub(*args):
    raise NotImplementedError("Exercise")


@pytest.mark.parametrize("k, good, bad", [
    (1, nb04.bitfit_count, nb04.bitfit_count_wrong),
    (2, nb04.select, nb04.select_wrong),
    (3, nb04.bitfit_percent, nb04.bitfit_percent_wrong),
])
def test_checker(k, good, bad):
    check = getattr(checks, f"check_{k}")
    assert check(good) is True
    assert check(bad) is False
    assert check(stub) is None
