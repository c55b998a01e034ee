"""A private nginx on 127.0.0.1, the one launcher of the tests and the benchmark.

nginx runs as our child (``daemon off``, ``-p``/``-e`` and every temp path in its own folder, so
nothing touches /etc or /var/log) and stops with SIGQUIT, then SIGKILL; it also gets SIGTERM if
the process that started it dies. What it serves is described with three small value types:

* :class:`Route` -- one ``location``: a folder (or one file) under a prefix, with an optional
  per-connection ``limit_rate``, a same-server redirect, extra headers;
* :class:`Site` -- one ``server`` block with a name ("origin", "cdn", ...), its routes, an http
  and/or an https listener (each its own port, so a second site is another host:port for
  redirect-following code) and an optional whole-site cap, ``total_rate``;
* :class:`Hub` -- a Hugging Face Hub shape across two sites: ``/{repo}/resolve/{rev}/{path}`` on
  the origin answers 302 with a signed, expiring link to the CDN site, which refuses a forged
  or expired link with 403 (nginx ``secure_link``; links are signed by :mod:`harness.hubsign`).

Bandwidth, honestly:

* ``Route.rate`` is nginx ``limit_rate``: per request, i.e. per connection for HTTP/1.1; eight
  parallel ranges get eight times the rate.
* ``Site.total_rate`` is one cap for ALL connections of the site (all its ports): nginx has no
  such limit, so the site's public ports belong to :mod:`harness.throttle`, a token-bucket TCP
  proxy in front of nginx (TLS passes through it untouched). It counts every byte sent to
  clients (headers and TLS records included), with a burst of one chunk (16-256 KiB).

TLS (any ``https`` site, or ``tls_names``): a certificate authority made at start with trustme
and a server certificate for 127.0.0.1, localhost and ``tls_names``. Clients trust it through
:attr:`Nginx.ca_file` (or :meth:`Nginx.tls_env`: ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``,
``CURL_CA_BUNDLE``; or :meth:`Nginx.ssl_context`). nginx keeps a shared session cache and
tickets, so a client that resumes sessions shows up as ``ssl_reused`` in the log.

Connections stay open (HTTP/1.1 keep-alive, ``keepalive_requests`` 100000, 65 s idle), so the
access log (:mod:`harness.accesslog`: one JSON record per request with ``$connection``,
``$connection_requests``, ``$ssl_session_reused``, ``$status``, bytes, Range, whether an
Authorization header came) tells how many connections and handshakes a client really made.
"""

from __future__ import annotations

import http.client
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import accesslog
from .accesslog import Record
from .hubsign import HubSigner
from .net import free_ports
from .proc import die_with_parent, stop_process
from .tls import ServerTLS, make_server_tls

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx")
READY_PATH = "/__harness__/ready"
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}
_PREFIX = re.compile(r"^/[A-Za-z0-9._~/-]*$")
_REPO = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$")
_HARNESS_ROOT = Path(__file__).resolve().parent.parent  # puts "harness" on the throttle's path


def nginx_binary() -> str | None:
    """The nginx executable (Debian package ``nginx``), or None."""
    for c in NGINX_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("nginx")


def rate_bytes(rate: int | str) -> int:
    """A rate in bytes per second: an int, or nginx's units (``"75m"`` = 75 MiB/s, ``"2k"``)."""
    if isinstance(rate, int):
        return rate
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]?)\s*", rate.lower())
    if not m:
        raise ValueError(f"not a rate: {rate!r} (examples: 2m, 75m, 512k, 1000000)")
    return int(m[1]) * _UNITS[m[2]]


@dataclass(frozen=True)
class Route:
    """One location of a site.

    ``prefix`` "/" serves the site's root; another prefix (ending in "/") serves ``folder``
    (default: the site's root) under it; ``exact=True`` makes ``prefix`` one whole path and
    ``folder`` the one file it serves. ``rate`` is nginx ``limit_rate`` (per connection),
    ``redirect`` answers 302 to ``redirect`` + the rest of the path on the same server,
    ``headers`` are added to every answer, ``etag=False`` drops nginx's own ETag; with
    ``users`` (``user:{PLAIN}password`` lines, nginx's htpasswd format) the route asks for HTTP
    Basic auth."""

    prefix: str = "/"
    rate: int | str | None = None
    folder: Path | None = None
    redirect: str | None = None
    exact: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    etag: bool = True
    users: Path | None = None

    def render(self, root: Path) -> str:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"route prefix must be a plain absolute path: {self.prefix!r}")
        body: list[str] = []
        if self.redirect is not None:
            pattern = self.prefix.replace(".", r"\.")
            body.append(f"rewrite ^{pattern}(.*)$ {self.redirect}$1 redirect;")
        elif self.exact:
            body.append(f"alias {self.folder or root};")
        elif self.prefix != "/" or self.folder is not None:
            if not self.prefix.endswith("/"):
                raise ValueError(f"a folder route's prefix ends with '/': {self.prefix!r}")
            body.append(f"alias {self.folder or root}/;")
        if self.rate is not None:
            body.append(f"limit_rate {rate_bytes(self.rate)};")
        if not self.etag:
            body.append("etag off;")
        if self.users is not None:
            body.append('auth_basic "harness";')
            body.append(f"auth_basic_user_file {self.users};")
        for name, value in self.headers:
            body.append(f"add_header {name} '{value}' always;")
        match = "= " if self.exact else ""
        inner = "\n".join(f"            {line}" for line in body)
        return f"        location {match}{self.prefix} {{\n{inner}\n        }}\n"


@dataclass(frozen=True)
class Site:
    """One server block: a name, what it serves, on which schemes, under which cap.

    Each scheme listens on its own port of 127.0.0.1; ``host`` is the name put in its URLs
    ("localhost" also works: the certificate covers both). ``total_rate`` caps the bytes sent
    to all the site's connections together (see the module notes). ``max_requests`` is nginx
    ``limit_conn``: at most that many requests in progress at once on the site, a request over it
    is answered ``refuse_status`` (429 or 503, what a host's connection limit looks like).
    ``rtt`` puts the site far away: the same proxy delays every byte by half of it each way and
    bounds each connection's bytes in flight by a congestion window growing up to ``window``
    (``harness/throttle.py``)."""

    name: str = "origin"
    root: Path | None = None
    routes: tuple[Route, ...] = (Route(),)
    http: bool = True
    https: bool = False
    host: str = "127.0.0.1"
    total_rate: int | str | None = None
    max_requests: int | None = None
    refuse_status: int = 429
    rtt: float | None = None
    window: int | str = "2m"

    @property
    def proxied(self) -> bool:
        """Behind the harness's proxy (a whole-site cap, a far link)."""
        return self.total_rate is not None or self.rtt is not None

    @property
    def schemes(self) -> tuple[str, ...]:
        return tuple(s for s, on in (("http", self.http), ("https", self.https)) if on)


@dataclass(frozen=True)
class Hub:
    """A Hub route on site ``origin`` redirecting to signed links on site ``cdn``.

    Files are ``{root}/{repo}/{path}`` for every revision. ``ttl`` is how long a link stays
    valid (seconds; also settable later on :attr:`Nginx.signer`), ``token`` makes the origin
    require ``Authorization: Bearer <token>``, ``rate`` caps each CDN connection
    (``limit_rate``), ``repo_rates`` gives some repos a cap of their own (``(("org/slow",
    "20m"),)``: one CDN serving files of several speeds), ``prefix`` is where the CDN serves
    links, and ``cdn_scheme`` forces the links' scheme (default: the request's, if the CDN has
    it)."""

    root: Path
    origin: str = "origin"
    cdn: str = "cdn"
    ttl: float = 3600.0
    token: str | None = None
    rate: int | str | None = None
    prefix: str = "/lfs/"
    cdn_scheme: str | None = None
    repo_rates: tuple[tuple[str, int | str], ...] = ()


@dataclass(frozen=True)
class Served:
    """A file a benchmark or test serves, with what a Hub would say about it."""

    name: str  # file name inside the served folder
    size: int
    sha256: str


def hub_direct_routes(prefix: str, repo: str, folder: Path, files: Sequence[Served],
                      commit: str, rate: int | str | None = None,
                      revision: str = "main") -> tuple[Route, ...]:
    """Just enough of the Hub for ``hf_hub_download(repo, f, endpoint=base + prefix)``, served
    directly (no redirect): for each file, ``{prefix}/{repo}/resolve/{revision}/{name}`` with
    ``ETag`` and ``X-Linked-Etag`` = the quoted sha256 (as the Hub sends for LFS files),
    ``X-Linked-Size`` and ``X-Repo-Commit``. ``huggingface_hub``'s metadata HEAD reads exactly
    these; without ``X-Xet-*`` headers it downloads over plain HTTP."""
    return tuple(
        Route(f"{prefix.rstrip('/')}/{repo}/resolve/{revision}/{f.name}", rate=rate,
              folder=folder / f.name, exact=True, etag=False,
              headers=(("ETag", f'"{f.sha256}"'), ("X-Linked-Etag", f'"{f.sha256}"'),
                       ("X-Linked-Size", str(f.size)), ("X-Repo-Commit", commit)))
        for f in files)


@dataclass
class _Listener:
    site: Site
    scheme: str
    port: int  # what clients connect to
    nginx_port: int  # where nginx listens (the same unless the site is capped)


@dataclass
class _Throttle:
    proc: subprocess.Popen[bytes]
    site: str
    pairs: list[tuple[int, int]] = field(default_factory=list)


class Nginx:
    """``with Nginx(folder) as srv: urlopen(f"{srv.url}/file")``.

    ``root`` is what a site without its own root serves; ``routes`` are the routes of the one
    default site "origin" (http only) when ``sites`` is not given. ``tmp`` holds the config,
    logs, certificates (default: a temporary folder removed by :meth:`stop`)."""

    def __init__(self, root: Path | str, tmp: Path | str | None = None, *,
                 routes: Sequence[Route] | None = None, sites: Sequence[Site] | None = None,
                 hub: Hub | None = None, tls_names: Sequence[str] = (),
                 workers: int | str = "auto") -> None:
        self.root = Path(root).resolve()
        if sites is None:
            sites = [Site("origin", routes=tuple(routes) if routes else (Route(),))]
        elif routes is not None:
            raise ValueError("give routes inside each Site, not both")
        self.sites: dict[str, Site] = {}
        for s in sites:
            if s.name in self.sites or not re.fullmatch(r"[a-z][a-z0-9-]*", s.name):
                raise ValueError(f"site names must be unique and [a-z][a-z0-9-]*: {s.name!r}")
            if not s.schemes:
                raise ValueError(f"site {s.name!r} has neither http nor https")
            self.sites[s.name] = s
        if hub is not None:
            for role, name in (("origin", hub.origin), ("cdn", hub.cdn)):
                if name not in self.sites:
                    raise ValueError(f"the hub's {role} site {name!r} is not among the sites")
            for repo, _ in hub.repo_rates:
                if not _REPO.match(repo.strip("/")):
                    raise ValueError(f"a repo with a rate must be a plain path: {repo!r}")
        self.hub = hub
        self.tls_names = tuple(tls_names)
        self.workers = workers
        self._given_tmp = Path(tmp) if tmp is not None else None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.tmp: Path = self._given_tmp or Path()
        self.tls: ServerTLS | None = None
        self.signer: HubSigner | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._throttles: list[_Throttle] = []
        self._listeners: list[_Listener] = []
        self._secret = secrets.token_hex(16)
        self._ready_token = secrets.token_hex(8)

    # -- addresses ----------------------------------------------------------------------------
    def _listener(self, site: str | None, scheme: str | None) -> _Listener:
        if not self._listeners:
            raise RuntimeError("nginx is not started")
        for lst in self._listeners:
            if (site is None or lst.site.name == site) and (scheme is None or lst.scheme == scheme):
                return lst
        raise KeyError(f"no listener for site={site!r} scheme={scheme!r}")

    def base(self, site: str | None = None, scheme: str | None = None) -> str:
        """``scheme://host:port`` of a site (default: the first site, its first scheme)."""
        lst = self._listener(site, scheme)
        return f"{lst.scheme}://{lst.site.host}:{lst.port}"

    @property
    def url(self) -> str:
        """The first site's base URL, e.g. ``http://127.0.0.1:PORT`` (no trailing slash)."""
        return self.base()

    @property
    def port(self) -> int:
        """The first site's first port."""
        return self._listener(None, None).port

    def port_of(self, site: str | None = None, scheme: str | None = None) -> int:
        return self._listener(site, scheme).port

    @property
    def ports(self) -> dict[tuple[str, str], int]:
        """(site, scheme) -> the port clients use."""
        return {(lst.site.name, lst.scheme): lst.port for lst in self._listeners}

    # -- TLS ----------------------------------------------------------------------------------
    def _server_tls(self) -> ServerTLS:
        if self.tls is None:
            raise RuntimeError("this nginx has no TLS (no https site) or is not started")
        return self.tls

    @property
    def ca_file(self) -> Path:
        """PEM of the CA that signed the server certificate (set once started with TLS)."""
        return self._server_tls().ca_file

    def tls_env(self) -> dict[str, str]:
        """``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` -> :attr:`ca_file`."""
        return self._server_tls().env()

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting :attr:`ca_file` only."""
        return self._server_tls().ssl_context()

    # -- the Hub ------------------------------------------------------------------------------
    def _hub(self) -> tuple[Hub, HubSigner]:
        if self.hub is None or self.signer is None:
            raise RuntimeError("this nginx has no Hub route or is not started")
        return self.hub, self.signer

    def hub_endpoint(self, scheme: str | None = None) -> str:
        """What ``HF_ENDPOINT`` should be: the Hub origin's base URL."""
        hub, _ = self._hub()
        return self.base(hub.origin, scheme)

    def hub_url(self, repo: str, path: str, revision: str = "main",
                scheme: str | None = None) -> str:
        """``{endpoint}/{repo}/resolve/{revision}/{path}``: answered with a 302 to the CDN."""
        return f"{self.hub_endpoint(scheme)}/{repo}/resolve/{revision}/{path}"

    def signed_url(self, repo: str, path: str, *, expires: int | None = None,
                   scheme: str | None = None, secret: str | None = None) -> str:
        """A CDN link as the Hub route gives it; a past ``expires`` or another ``secret``
        makes one the CDN refuses (403)."""
        _, signer = self._hub()
        return signer.signed_url(repo, path, expires=expires, scheme=scheme, secret=secret)

    # -- the access log -----------------------------------------------------------------------
    @property
    def access_log(self) -> Path:
        return self.tmp / "access.log"

    def log_size(self) -> int:
        """The access log's size now: give it to :meth:`records` as ``since`` later."""
        try:
            return self.access_log.stat().st_size
        except FileNotFoundError:
            return 0

    def records(self, since: int = 0, **filters: Any) -> list[Record]:
        """Every logged request (after the byte offset ``since``, a :meth:`log_size`),
        optionally filtered as :func:`harness.accesslog.select` (``uri=``, ``prefix=``,
        ``contains=``, ``site=``, ``port=``, ``scheme=``, ``status=``). Ports are the ones
        clients used."""
        internal = {lst.nginx_port: lst.port for lst in self._listeners}
        recs = accesslog.read_log(self.access_log, internal, since)
        return accesslog.select(recs, **filters) if filters else recs

    def wait_records(self, count: int = 1, timeout: float = 10.0, **filters: Any
                     ) -> list[Record]:
        """:meth:`records` once at least ``count`` match: nginx logs a request after its last
        byte left, so a client that has read everything may look before the line is there."""
        deadline = time.monotonic() + timeout
        while len(recs := self.records(**filters)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(recs)} of {count} requests logged for {filters}")
            time.sleep(0.01)
        return recs

    def requests(self) -> list[Record]:
        """Every logged request (the readiness probe is not logged)."""
        return self.records()

    def bytes_served(self, **filters: Any) -> int:
        """Body bytes sent for the requests matching ``filters`` (see :meth:`records`)."""
        return accesslog.bytes_served(self.records(**filters))

    def connections(self, **filters: Any) -> int:
        """Distinct connections that carried the requests matching ``filters``."""
        return accesslog.connections(self.records(**filters))

    def tls_handshakes(self, **filters: Any) -> int:
        """Full TLS handshakes (sessions not resumed) among the matching requests."""
        return accesslog.tls_handshakes(self.records(**filters))

    # -- configuration ------------------------------------------------------------------------
    def render_config(self) -> str:
        tmp = self.tmp
        user = ""
        if os.geteuid() == 0:  # workers would drop to "nobody"; keep them able to read our files
            user = f"user {pwd.getpwuid(os.getuid()).pw_name};"
        temp_paths = "\n".join(f"    {d}_temp_path {tmp / d};"
                               for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        tls = ""
        if self.tls is not None:
            tls = f"""
    ssl_certificate {self.tls.cert_file};
    ssl_certificate_key {self.tls.key_file};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:harness_tls:4m;
    ssl_session_timeout 1h;
    ssl_session_tickets on;"""
        servers = "".join(self._render_site(s) for s in self.sites.values())
        zones = "".join(f"    limit_conn_zone $server_name zone=harness_{s.name}:1m;\n"
                        for s in self.sites.values() if s.max_requests is not None)
        return f"""# generated by harness/nginx.py; lives in a temporary folder
{user}
daemon off;
master_process on;
worker_processes {self.workers};
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    map $http_authorization $harness_auth {{ "" "0"; default "1"; }}
    log_format harness escape=json '{accesslog.LOG_FORMAT}';
    access_log {tmp / "access.log"} harness;
{zones}{temp_paths}
    types {{ application/octet-stream onnx bin; text/html html; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    keepalive_timeout 65;
    keepalive_requests 100000;{tls}
{servers}}}
"""

    def _render_site(self, site: Site) -> str:
        root = site.root or self.root
        # Behind the throttle a small send buffer keeps nginx's "sent" near what clients got.
        opts = " sndbuf=64k" if site.total_rate is not None else ""
        listens = "".join(
            f"        listen 127.0.0.1:{lst.nginx_port}"
            f"{' ssl' if lst.scheme == 'https' else ''}{opts};\n"
            for lst in self._listeners if lst.site is site)
        routes = "".join(r.render(root) for r in site.routes)
        if site.max_requests is not None:
            routes = (f"        limit_conn harness_{site.name} {site.max_requests};\n"
                      f"        limit_conn_status {site.refuse_status};\n{routes}")
        hub = ""
        if self.hub is not None and self.signer is not None and site.name == self.hub.origin:
            hub += f"""        location ~ ^/.+/resolve/[^/]+/.+$ {{
            proxy_pass http://127.0.0.1:{self.signer.port};
            proxy_redirect off;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
"""
        if self.hub is not None and site.name == self.hub.cdn:
            prefix = "/" + self.hub.prefix.strip("/") + "/"
            root_dir = Path(self.hub.root).resolve()
            places: list[tuple[str, Path, int | str | None]] = [(prefix, root_dir, self.hub.rate)]
            for repo, repo_rate in self.hub.repo_rates:  # longer prefixes: nginx picks these
                repo = repo.strip("/")
                places.append((f"{prefix}{repo}/", root_dir / repo, repo_rate))
            for where, folder, cap in places:
                rate = f"\n            limit_rate {rate_bytes(cap)};" if cap else ""
                hub += f"""        location {where} {{
            alias {folder}/;
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri {self._secret}";
            if ($secure_link = "") {{ return 403 "invalid link\\n"; }}
            if ($secure_link = "0") {{ return 403 "expired link\\n"; }}{rate}
        }}
"""
        return f"""    server {{
{listens}        server_name {site.name};
        root {root};
        location = {READY_PATH} {{ access_log off; return 200 "{self._ready_token}\\n"; }}
{routes}{hub}    }}
"""

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, attempts: int = 5) -> Nginx:
        exe = nginx_binary()
        if exe is None:
            raise RuntimeError("nginx is not installed (Debian package 'nginx')")
        if self._given_tmp is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="harness-nginx-")
            self.tmp = Path(self._tmpdir.name)
        else:
            self.tmp = self._given_tmp
            self.tmp.mkdir(parents=True, exist_ok=True)
        try:
            if self.tls_names or any(s.https for s in self.sites.values()):
                self.tls = make_server_tls(self.tmp / "tls", self.tls_names)
            if self.hub is not None:
                self.signer = HubSigner(self.hub.root, self._secret, {}, prefix=self.hub.prefix,
                                        ttl=self.hub.ttl, token=self.hub.token,
                                        cdn_scheme=self.hub.cdn_scheme).start()
            last = ""
            for _ in range(attempts):  # a free port can be taken between probe and bind: retry
                last = self._try_start(exe)
                if not last:
                    return self
            raise RuntimeError(f"nginx did not start: {last.strip()[-1500:]}")
        except BaseException:
            self.stop()
            raise

    def _try_start(self, exe: str) -> str:
        """Start nginx (and throttles) on fresh ports; '' when every listener answers."""
        wanted = [(s, scheme) for s in self.sites.values() for scheme in s.schemes]
        capped = sum(1 for s, _ in wanted if s.proxied)
        ports = free_ports(len(wanted) + capped)
        spare = iter(ports[len(wanted):])
        self._listeners = [
            _Listener(s, scheme, port, next(spare) if s.proxied else port)
            for (s, scheme), port in zip(wanted, ports[: len(wanted)], strict=True)]
        if self.signer is not None and self.hub is not None:
            self.signer.cdn_bases = {lst.scheme: f"{lst.scheme}://{lst.site.host}:{lst.port}"
                                     for lst in self._listeners
                                     if lst.site.name == self.hub.cdn}
        conf = self.tmp / "nginx.conf"
        conf.write_text(self.render_config())
        errors = self.tmp / "stderr.log"
        with open(errors, "ab") as err:
            self.proc = subprocess.Popen(
                [exe, "-p", str(self.tmp), "-e", str(self.tmp / "error.log"), "-c", str(conf)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                preexec_fn=die_with_parent())
        problem = self._start_throttles()
        if not problem and self._wait_ready():
            return ""
        problem = problem or "not ready"
        self._stop_processes()
        text = errors.read_text(errors="replace") if errors.exists() else ""
        log = self.tmp / "error.log"
        if log.exists():
            text += log.read_text(errors="replace")
        return f"{problem}: {text}"

    def _start_throttles(self) -> str:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_HARNESS_ROOT), env.get("PYTHONPATH", "")) if p)
        for site in self.sites.values():
            if not site.proxied:
                continue
            pairs = [(lst.port, lst.nginx_port) for lst in self._listeners if lst.site is site]
            rate = rate_bytes(site.total_rate) if site.total_rate is not None else 0
            far = ["--delay", str(site.rtt / 2), "--window", str(rate_bytes(site.window))
                   ] if site.rtt else []
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.throttle", "--rate", str(rate), *far,
                 *(f"{a}:{b}" for a, b in pairs)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env, preexec_fn=die_with_parent())
            self._throttles.append(_Throttle(proc, site.name, pairs))
            assert proc.stdout is not None
            readable, _, _ = select.select([proc.stdout], [], [], 20.0)
            line = proc.stdout.readline() if readable else b""
            if line.strip() != b"ready":
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None \
                    and proc.stderr else ""
                return f"throttle for {site.name!r} did not start {err}"
        return ""

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        """Every listener answers our readiness path with our token: it is *our* nginx."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        pending = list(self._listeners)
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._answers(pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.03)
        return not pending

    def _answers(self, lst: _Listener) -> bool:
        conn: http.client.HTTPConnection
        if lst.scheme == "https":
            assert self.tls is not None
            conn = http.client.HTTPSConnection("127.0.0.1", lst.port, timeout=2,
                                               context=self.tls.ssl_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", lst.port, timeout=2)
        try:
            conn.request("GET", READY_PATH)
            resp = conn.getresponse()
            return resp.status == 200 and resp.read().strip() == self._ready_token.encode()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _stop_processes(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, signal.SIGQUIT)  # graceful: finish open responses, then exit
        for t in self._throttles:
            stop_process(t.proc, signal.SIGTERM, 5)
            for stream in (t.proc.stdout, t.proc.stderr):
                if stream is not None:
                    stream.close()
        self._throttles = []

    def stop(self) -> None:
        self._stop_processes()
        if self.signer is not None:
            self.signer.stop()
            self.signer = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
