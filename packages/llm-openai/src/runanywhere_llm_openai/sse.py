"""A server-sent events reader (the part of the HTML standard's event-stream format that OpenAI's
streams use): ``data:`` lines, joined by newlines, make one event at the blank line that ends
it; comments (``:``) and the ``event``, ``id`` and ``retry`` fields are skipped; lines end with
LF or CRLF. OpenAI ends a stream with the event ``[DONE]``, which the caller looks for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def events(lines: Iterable[bytes]) -> Iterator[str]:
    """Each event's data, as text, in order (the last one also when no blank line ends it)."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
