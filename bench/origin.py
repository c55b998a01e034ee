"""The benchmark's world: one nginx (``harness/nginx.py``) shaped like the places models come from.

Two sites, each on its own ports of 127.0.0.1 (so a redirect really goes to another host:port):

* ``origin`` (http and https):

  - ``/full/<file>``: the payload folder, ``sendfile on``; the plain-http route (no TLS, no
    redirect), kept as the reference that shows what TLS and the redirect cost;
  - ``/hf/<repo>/resolve/main/<file>``: just enough of the Hub for ``hf_hub_download`` over plain
    http, answered directly (``harness.nginx.hub_direct_routes``);
  - ``/{repo}/resolve/{rev}/{file}`` (the harness's :class:`~harness.nginx.Hub`): ``302`` to a
    signed link on the CDN, valid for an hour, with ``X-Repo-Commit``, ``X-Linked-Etag`` (the
    quoted sha256) and ``X-Linked-Size``, as huggingface.co answers for an LFS file.

* ``cdn`` (https only): ``/lfs/{repo}/{file}?expires=E&md5=H``, refused (403) when forged or
  expired. Per-connection caps (nginx ``limit_rate``) by repo: ``bench/full`` none,
  ``bench/cap75`` 75 MiB/s, ``bench/cap20`` 20 MiB/s.

TLS: a certificate authority made at start (trustme); peers get it through ``SSL_CERT_FILE``,
``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE`` (:meth:`Origin.tls_env`), aria2c through
``--ca-certificate``. The Hub repos hold the payloads as hard links (no copies) under
``<payload folder>/.hub/``.

Routes of the benchmark (``ROUTES``): ``http`` (plain, direct), ``https`` (Hub redirect to the
CDN, no cap), ``https-75`` and ``https-20`` (the same, CDN capped per connection), ``https-far``
(the same as ``https``, but the Hub and the CDN are 80 ms away: a second nginx whose sites sit
behind the harness's far-link proxy, each connection's bytes in flight bounded by a congestion
window growing up to 2 MiB, so one connection moves at most 25 MiB/s; ``Origin(rtt=...)``).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.accesslog import Record
from harness.nginx import Hub, Nginx, Route, Served, Site, hub_direct_routes

HF_REPO = "bench/payloads"  # the plain-http Hub route's repo
HF_REVISION = "main"
#: A fixed 40-hex commit id for the plain-http Hub route (what X-Repo-Commit must look like).
HF_COMMIT = "0123456789abcdef0123456789abcdef01234567"
SLOW_RATE = "75m"
FAR_RTT = 0.08
FAR_WINDOW = 2 * 2**20


@dataclass(frozen=True)
class RouteInfo:
    name: str
    title: str  # for reports
    tls: bool
    redirect: bool
    repo: str  # the Hub repo that serves it (http: the direct Hub route's)
    cap: str | None  # per-connection cap on the server that sends the bytes
    rtt: float | None = None  # round trip to the Hub and the CDN (None: loopback)

    def per_connection(self) -> float | None:
        """The most one connection can move (bytes/s): the cap, or window / round trip."""
        if self.rtt:
            return FAR_WINDOW / self.rtt
        return float(int(self.cap[:-1]) * 2**20) if self.cap else None


ROUTES: dict[str, RouteInfo] = {r.name: r for r in [
    RouteInfo("http", "plain HTTP, direct, full speed", False, False, HF_REPO, None),
    RouteInfo("https", "HTTPS, Hub 302 to the CDN, full speed", True, True, "bench/full", None),
    RouteInfo("https-75", "HTTPS, Hub 302 to the CDN, 75 MiB/s per connection", True, True,
              "bench/cap75", "75m"),
    RouteInfo("https-20", "HTTPS, Hub 302 to the CDN, 20 MiB/s per connection", True, True,
              "bench/cap20", "20m"),
    RouteInfo("https-far", "HTTPS, Hub 302 to the CDN, both 80 ms away (2 MiB window)", True,
              True, "bench/full", None, FAR_RTT),
]}
#: Old route names (``--routes full``; cache_bench, serve_bench and fleet use ``url("full")``).
ALIASES = {"full": "http"}

__all__ = ["HF_COMMIT", "HF_REPO", "HF_REVISION", "ROUTES", "SLOW_RATE", "Origin", "Served"]


def _link(src: Path, dst: Path) -> None:
    """``dst`` is the same file as ``src`` (a hard link; a copy across file systems)."""
    try:
        if dst.exists() and os.path.samefile(src, dst):
            return
    except OSError:
        pass
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


class Origin:
    """``with Origin(payload_dir, files) as srv: srv.front_door("https-75", name)``."""

    def __init__(self, payload_dir: Path, files: list[Served], slow_rate: str = SLOW_RATE,
                 total_rate: str | None = None, rtt: float | None = None) -> None:
        """``slow_rate``: the cap of ``/slow/`` (plain http, per connection; the fleet's
        option). ``total_rate``: one cap for every connection to the CDN and the origin's
        https port together (a WAN link; the harness's token-bucket proxy). ``rtt``: both
        sites that far away (the proxy's far link, ``FAR_WINDOW`` per connection)."""
        self.payload_dir = Path(payload_dir).resolve()
        self.files = files
        self.slow_rate = slow_rate
        d = self.payload_dir
        self.hub_root = d / ".hub"
        for route in ROUTES.values():
            if route.redirect:
                for f in files:
                    _link(d / f.name, self.hub_root / route.repo / f.name)
        origin_routes = (
            Route("/full/", folder=d),
            Route("/slow/", folder=d, rate=slow_rate),
            *hub_direct_routes("/hf", HF_REPO, d, files, HF_COMMIT, revision=HF_REVISION),
        )
        far = {"rtt": rtt, "window": FAR_WINDOW} if rtt else {}
        sites = [Site("origin", routes=origin_routes, http=True, https=True, **far),
                 Site("cdn", routes=(), http=False, https=True, total_rate=total_rate, **far)]
        rates = tuple((r.repo, r.cap) for r in ROUTES.values() if r.redirect and r.cap)
        self.nginx = Nginx(d, sites=sites, hub=Hub(self.hub_root, repo_rates=rates))
        self._log_offset = 0

    # -- addresses --------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """The origin's plain-http base URL."""
        return self.nginx.base("origin", "http")

    @property
    def tmp(self) -> Path:
        """Config and logs of the running nginx."""
        return self.nginx.tmp

    @staticmethod
    def route(name: str) -> RouteInfo:
        return ROUTES[ALIASES.get(name, name)]

    def url(self, route: str, name: str) -> str:
        """A plain-http file URL: ``full`` (``http``) or ``slow`` (75 MiB/s per connection)."""
        if route == "slow":
            return f"{self.base}/slow/{name}"
        if self.route(route).redirect:
            return self.front_door(route, name)
        return f"{self.base}/full/{name}"

    def front_door(self, route: str, name: str) -> str:
        """Where a user's tool starts: the Hub's resolve URL (https routes) or the file."""
        r = self.route(route)
        if not r.redirect:
            return f"{self.base}/full/{name}"
        return self.nginx.hub_url(r.repo, name, revision=HF_REVISION, scheme="https")

    def hf_endpoint(self, route: str) -> str:
        """``HF_ENDPOINT`` for ``hf_hub_download`` on this route."""
        if self.route(route).redirect:
            return self.nginx.hub_endpoint("https")
        return f"{self.base}/hf"

    def hf_repo(self, route: str) -> str:
        return self.route(route).repo

    @property
    def ca_file(self) -> Path:
        return self.nginx.ca_file

    def tls_env(self) -> dict[str, str]:
        return self.nginx.tls_env()

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> Origin:
        self.nginx.start()
        signer = self.nginx.signer
        assert signer is not None
        for route in ROUTES.values():  # else the Hub hashes a file on its first resolve
            if route.redirect:
                for f in self.files:
                    signer.remember(self.hub_root / route.repo / f.name, f.sha256)
        return self

    def stop(self) -> None:
        self.nginx.stop()

    def __enter__(self) -> Origin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the access log ---------------------------------------------------------------------------
    def bytes_served(self) -> int:
        """Body bytes nginx has sent so far, over every request (from its access log)."""
        return self.nginx.bytes_served()

    def log_mark(self) -> int:
        """A place in the access log: :meth:`records_since` returns what came after it."""
        return self.nginx.log_size()

    def records_since(self, mark: int, settle: float = 0.15, timeout: float = 3.0
                      ) -> list[Record]:
        """The requests logged after ``mark``, once the log has been quiet for ``settle`` s
        (nginx writes a line when a response ends, a moment after the client has it all)."""
        deadline = time.monotonic() + timeout
        size, quiet_since = self.log_mark(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.03)
            now = self.log_mark()
            if now != size:
                size, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= settle:
                break
        return self.nginx.records(since=mark)
