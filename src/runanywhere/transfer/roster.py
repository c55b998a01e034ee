"""The URLs of one file (the catalog's URL, then its mirrors) and what each of them did.

A fetch reads from one URL at a time. A failure no retry can heal moves it to the next URL, and
the roster remembers why, so the final error names every URL tried. It also remembers whose
bytes are in the partial since it last started from byte 0: when the whole file turns out wrong,
those URLs are to blame. A URL that sent a wrong file alone is left for good; URLs that shared
in one are each used again only alone, after the others. And it remembers where each URL's
redirect led, so later pieces go straight there (a signed CDN link).

Thread-safe: the workers of one fetch share it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from ..logs import log


class UrlRoster:
    def __init__(self, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError("no URL to fetch")
        self.urls = list(urls)
        self._lock = threading.Lock()
        self._index = 0
        #: What each URL did that made us leave it (never used again).
        self._tried: dict[str, str] = {}
        #: The URLs whose bytes are in the partial now, in the order they first wrote.
        self._supplied: dict[str, None] = {}
        #: URLs that shared in a wrong file with others: used again only alone, and last.
        self._suspects: set[str] = set()
        #: Where a URL's redirect led.
        self._final: dict[str, str] = {}

    @property
    def primary(self) -> str:
        return self.urls[0]

    @property
    def current(self) -> str:
        with self._lock:
            return self.urls[self._index]

    def tried_note(self) -> str:
        """``"; tried URL: why; ..."`` when more than one URL was tried, else ``""``."""
        with self._lock:
            if len(self._tried) < 2:
                return ""
            return "; tried " + "; ".join(f"{u}: {why}" for u, why in self._tried.items())

    # -- moving on -----------------------------------------------------------------------------
    def leave(self, failed: str, why: str) -> str | None:
        """``failed`` did ``why``: the URL to use now (another worker may have moved on
        already), or None when every URL was tried."""
        with self._lock:
            self._tried.setdefault(failed, why)
            if self.urls[self._index] != failed:
                return self.urls[self._index]
            nxt = self._move()
        if nxt is not None:
            log.warning("%s failed; switching to the mirror %s", failed, nxt)
        return nxt

    def move_on(self) -> str | None:
        """The next URL not left yet, unsuspected ones first (None: none is left)."""
        with self._lock:
            return self._move()

    def _move(self) -> str | None:
        fresh = [i for i, u in enumerate(self.urls) if u not in self._tried]
        clean = [i for i in fresh if self.urls[i] not in self._suspects]
        if not fresh:
            return None
        self._index = (clean or fresh)[0]
        return self.urls[self._index]

    def settle_on(self, index: int, failures: Mapping[str, str]) -> None:
        """Use ``urls[index]`` (the one that could say the file's size); ``failures`` are what
        the others did when asked."""
        with self._lock:
            self._tried.update(failures)
            self._index = index

    # -- whose bytes ---------------------------------------------------------------------------
    def fresh_partial(self) -> None:
        """The partial starts over from byte 0: nobody's bytes are in it."""
        with self._lock:
            self._supplied.clear()

    def supplied(self, url: str) -> None:
        """Bytes from ``url`` went into the partial."""
        with self._lock:
            self._supplied[url] = None

    def caught(self, url: str, why: str) -> bool:
        """``url`` was caught sending the wrong file. True if bytes of it are in the partial
        (they are suspect too: the file must start over), and then ``url`` is left for good."""
        with self._lock:
            if url not in self._supplied:
                return False
            self._tried[url] = why
            return True

    def blame(self, why: str) -> list[str]:
        """The whole file is wrong (``why``): the URLs that sent it. One URL alone is left for
        good; several are each suspected. (One left earlier for another reason, a timeout,
        stays left: no endless loop.)"""
        with self._lock:
            senders = list(self._supplied) or [self.urls[self._index]]
            if len(senders) == 1:
                self._tried[senders[0]] = why
            else:
                self._suspects.update(senders)
            return senders

    # -- redirects -----------------------------------------------------------------------------
    def target(self, url: str) -> str:
        """Where to send a request for ``url``: where its redirect led before, else ``url``."""
        with self._lock:
            return self._final.get(url, url)

    def redirected(self, url: str, final: str | None) -> None:
        """``url`` led to ``final`` (None: forget it, the link went stale)."""
        with self._lock:
            if final is None or final == url:
                self._final.pop(url, None)
            else:
                self._final[url] = final
