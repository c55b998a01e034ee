"""The package's logger and the one warn-once helper.

Every module logs through ``logging.getLogger("runanywhere")`` (or a child of it); the CLI's
``-v``/``-vv`` turn on INFO/DEBUG. A degraded mode or a tier that steps aside warns once per
process and key, then speaks at DEBUG, so a loop over many models does not repeat itself.

No record of ours carries a secret: the package's loggers (``log``, and :func:`logger` for a
module's own) mask the passwords and tokens of the URLs in each message (``redact.py``) before
any handler sees it, whoever configured the handlers.
"""

from __future__ import annotations

import logging
import threading

from .redact import redact


class Redacting(logging.Filter):
    """Masks the secrets of the URLs in a record's message (and its traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_REDACTING = Redacting()


def logger(name: str) -> logging.Logger:
    """The logger ``name`` (a child of ``runanywhere``), masking secrets in its records.

    A filter of a logger applies only to what is logged through it, not to its children's
    records, hence one filter per logger of the package."""
    found = logging.getLogger(name)
    if _REDACTING not in found.filters:
        found.addFilter(_REDACTING)
    return found


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
