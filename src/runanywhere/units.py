"""Byte sizes for people: parse ``"2GiB"`` and print ``1.5 MiB`` (one unit family: IEC)."""

from __future__ import annotations

import math

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
#: Larger than any disk: a size past this is a typo, not a limit.
MAX_SIZE = 2**60


def parse_size(text: str) -> int:
    """Parse ``"500MiB"``, ``"2G"``, ``"1.5GB"`` or ``"1048576"`` into bytes (``ValueError``)."""
    s = str(text).strip().lower().replace(" ", "")
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num):]
    if unit not in _SIZE_UNITS or not num:
        raise ValueError(f"not a size: {text!r} (examples: 500MiB, 2GB, 1048576)")
    try:
        value = float(num) * _SIZE_UNITS[unit]
    except ValueError:
        raise ValueError(f"not a size: {text!r} (examples: 500MiB, 2GB, 1048576)") from None
    if not math.isfinite(value) or value > MAX_SIZE:
        raise ValueError(f"size {text!r} is too large (at most {MAX_SIZE} bytes)")
    if value < 0:
        raise ValueError(f"size must not be negative: {text!r}")
    return int(value)


def human_size(n: float | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``None`` -> ``"-"``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_rate(bytes_per_second: float | None) -> str:
    """``human_size`` per second, in the same unit family (``MiB/s``)."""
    return "-" if bytes_per_second is None else f"{human_size(bytes_per_second)}/s"
