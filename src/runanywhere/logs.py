"""The package's logger and the one warn-once helper.

Every module logs through ``logging.getLogger("runanywhere")`` (or a child of it); the CLI's
``-v``/``-vv`` turn on INFO/DEBUG. A degraded mode or a tier that steps aside warns once per
process and key, then speaks at DEBUG, so a loop over many models does not repeat itself.

Modules log through :func:`logger` (their own child logger) or ``log``.
"""

from __future__ import annotations

import logging
import threading


def logger(name: str) -> logging.Logger:
    """The logger ``name`` (a child of ``runanywhere``)."""
    return logging.getLogger(name)


log = logger("runanywhere")

_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(key: str, message: str, *args: object, logger: logging.Logger = log) -> bool:
    """Log ``message`` as a warning the first time ``key`` is seen in this process (then at
    DEBUG); True the first time."""
    with _warned_lock:
        first = key not in _warned
        _warned.add(key)
    (logger.warning if first else logger.debug)(message, *args)
    return first


def reset_warnings() -> None:
    """Forget which warnings were given (for tests)."""
    with _warned_lock:
        _warned.clear()
