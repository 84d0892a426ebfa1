"""The registry of methods: the tests, the notebooks and the comparison job iterate over it.

A method registers its config class with `@register("name")`; nothing else is needed for the contract
test (tests/test_contract.py) and `python -m methods.compare` to pick it up.
"""

from __future__ import annotations

from .config import PeftConfig

METHODS: dict[str, type[PeftConfig]] = {}


def register(name: str):
    """Class decorator: `@register("bitfit") class BitFitConfig(PeftConfig): ...`."""

    def wrap(cls: type[PeftConfig]) -> type[PeftConfig]:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice ({METHODS[name].__name__}, {cls.__name__})")
        cls.peft_type = name
        METHODS[name] = cls
        return cls

    return wrap


def get_method(name: str) -> type[PeftConfig]:
    """The config class registered under `name`; a clear error lists the registered names."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; registered methods: {sorted(METHODS)}")
    return METHODS[name]
