"""``Result[T, E]``: the seed's success-or-error value, for APIs that do not raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ModelError

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True, slots=True)
class Result(Generic[T, E]):
    """Either a value (``success`` is true) or an error. Build with :meth:`ok` / :meth:`err`."""

    success: bool
    value: T | None = None
    error: E | None = None

    @staticmethod
    def ok(value: T) -> Result[T, E]:
        return Result(True, value, None)

    @staticmethod
    def err(error: E) -> Result[T, E]:
        return Result(False, None, error)

    def unwrap(self) -> T:
        """The value, or raise the typed error."""
        if self.success:
            return self.value  # type: ignore[return-value]
        if self.error is None:  # pragma: no cover - construction guarantees an error
            raise ModelError("result holds neither a value nor an error")
        raise self.error

    def __bool__(self) -> bool:
        return self.success
