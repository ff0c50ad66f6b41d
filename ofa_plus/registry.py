"""A name -> class table filled by a class decorator: what the modality and output-kind registries share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)


class Registry(dict):
    """``{name: class}``. ``register`` is a class decorator; ``get`` names the known entries when one is missing.

    ``what`` is the kind of entry in messages ("modality"); ``check_name`` returns a problem with a
    class's ``name`` (or None)."""

    def __init__(self, what: str, check_name: Callable[[str], str | None]):
        super().__init__()
        self.what, self.check_name = what, check_name

    def register(self, cls: T) -> T:
        problem = self.check_name(cls.name)
        if problem:
            raise ValueError(f"{self.what} name {problem}, got {cls.name!r}")
        if cls.name in self and self[cls.name] is not cls:
            raise ValueError(f"{self.what} {cls.name} is already registered by {self[cls.name].__module__}")
        self[cls.name] = cls
        return cls

    def get_entry(self, name: str) -> type:
        try:
            return self[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} {name!r}; known: {', '.join(sorted(self))}") from None
