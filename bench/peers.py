"""The downloaders we compare, one function per peer, each run in a fresh subprocess.

Parent side: a peer function turns a :class:`Job` into a :class:`Command` (argv, env, where the
file will be). :func:`measure` starts it, reaps it with ``os.wait4`` to read *that child's*
user+sys CPU seconds (children it waited for included), takes its peak RSS from GNU ``time -f %M``
(see :func:`gnu_time` for why not ``ru_maxrss``), then hashes the output file itself: wrong
bytes, a wrong size, a missing file, a non-zero exit or a timeout is a failure, and a failure
never counts as a time.

Child side: Python peers run ``child.py NAME ARGS_JSON`` (kept apart so a child imports only
``json``, ``sys``, ``time`` and its own library, not this module's machinery). The child prints one
line ``@@RESULT {"path": ..., "inner": seconds}``; ``inner`` is the download call alone (no
interpreter start, no imports), reported next to the whole-process wall time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_SRC = HERE.parent / "src"
#: Where runanywhere peers import the package from (put first on PYTHONPATH). ``run.py`` points
#: this at a copy of ``src/`` taken at the start, so edits during a run cannot mix versions.
RA_SRC = REPO_SRC
RESULT_TAG = "@@RESULT "
MiB = 2**20


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    size: int
    sha256: str
    name: str  # payload file name
    route: str  # a key of origin.ROUTES
    url: str  # the front door: the Hub's resolve URL on https routes, the file on http
    hf_endpoint: str  # HF_ENDPOINT for hf_hub_download (and hf_transfer's resolve)
    hf_repo: str
    catalog: Path  # a runanywhere catalog with one model pointing at `url`
    model_id: str
    workdir: Path  # fresh and empty for every run
    ca_file: Path | None = None  # the CA that signed the server certificates (https)


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str]
    output: Path | None = None  # known in advance (curl, aria2c); else reported by the child
    find_output: Callable[[], Path | None] | None = None


@dataclass
class Measurement:
    peer: str
    size: int
    route: str
    rep: int
    ok: bool
    error: str = ""
    wall: float = 0.0  # whole subprocess, fork to reap
    inner: float | None = None  # the download call alone (Python peers)
    cpu: float = 0.0  # user + sys of the child (and children it reaped)
    cpu_user: float = 0.0
    cpu_sys: float = 0.0
    peak_rss_mib: float = 0.0
    # from nginx's access log (every request the run made, both sites)
    requests: int = 0
    connections: int = 0  # distinct TCP connections ($connection)
    tls_full: int = 0  # TLS connections with a full handshake ($ssl_session_reused ".")
    tls_resumed: int = 0  # TLS connections that resumed a session ("r")
    redirects: int = 0  # 3xx answers
    served: int = 0  # body bytes nginx sent
    settle_s: float = 0.0  # untimed wait for the memory state before the run
    settle_mib: int = 0  # free memory the machine handed back to its host meanwhile

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Peer:
    name: str
    label: str
    build: Callable[[Job], Command]
    needs: tuple[str, ...] = ()  # python modules (checked in a subprocess) or "exe:NAME"
    runanywhere: bool = False
    note: str = ""
    verifies: bool = False  # checks the sha256 of what it downloaded


# ---------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "ftp_proxy"}


_CA_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def base_env(job: Job | None = None) -> dict[str, str]:
    """The parent's environment without proxies, tokens or CA settings that would change what a
    peer does; with the job's CA (the variables OpenSSL, requests/httpx and curl read)."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in _PROXY_VARS and not k.startswith(("RUNANYWHERE_", "HF_"))
           and k not in ("HUGGING_FACE_HUB_TOKEN", *_CA_VARS)}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if job is not None and job.ca_file is not None:
        env.update({"SSL_CERT_FILE": str(job.ca_file), "REQUESTS_CA_BUNDLE": str(job.ca_file),
                    "CURL_CA_BUNDLE": str(job.ca_file)})
    return env


def _py_child(job: Job, peer: str, args: dict[str, object], env: dict[str, str] | None = None,
              find_output: Callable[[], Path | None] | None = None) -> Command:
    e = base_env(job)
    e.update(env or {})
    argv = [sys.executable, str(HERE / "child.py"), peer, json.dumps(args)]
    return Command(argv, e, None, find_output)


def _ra_env(job: Job, durable: bool) -> dict[str, str]:
    env = {"RUNANYWHERE_HOME": str(job.workdir / "ra-home"),
           "RUNANYWHERE_DURABLE": "1" if durable else "0"}
    env.update(ra_pythonpath())
    return env


def _find_in_home(job: Job) -> Callable[[], Path | None]:
    """For the CLI: the cached file is whichever regular file in its home has our size."""
    def find() -> Path | None:
        home = job.workdir / "ra-home"
        candidates = []
        for root, _dirs, files in os.walk(home):
            for f in files:
                p = Path(root) / f
                try:
                    if not p.is_symlink() and p.stat().st_size == job.size:
                        candidates.append(p)
                except OSError:
                    pass
        # any copy with the right bytes will do; verify() reports a mismatch on the first
        for p in candidates:
            if sha256_file(p) == job.sha256:
                return p
        return candidates[0] if candidates else None
    return find


def runanywhere_cli_argv() -> list[str]:
    exe = Path(sys.executable).parent / "runanywhere"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("runanywhere")
    if found:
        return [found]
    return [sys.executable, "-c",
            "import sys; from runanywhere.cli.main import main; sys.exit(main())"]


# ---------------------------------------------------------------------------------------------
# peers (parent side): one function each
# ---------------------------------------------------------------------------------------------
#: FetchConfig fields for the runanywhere API peers (``bench.run --ra-config``); {} = defaults.
RA_FETCH: dict[str, object] = {}


def peer_runanywhere_api(job: Job, durable: bool = True) -> Command:
    args: dict[str, object] = {"home": str(job.workdir / "ra-home"),
                               "catalog": str(job.catalog), "id": job.model_id}
    if RA_FETCH:
        args["fetch"] = RA_FETCH
    return _py_child(job, "runanywhere_api", args, _ra_env(job, durable))


def peer_runanywhere_api_nondurable(job: Job) -> Command:
    return peer_runanywhere_api(job, durable=False)


def peer_runanywhere_cli(job: Job, durable: bool = True) -> Command:
    env = base_env(job)
    env.update(_ra_env(job, durable))
    argv = [*runanywhere_cli_argv(), "--home", str(job.workdir / "ra-home"),
            "--catalog", str(job.catalog), "pull", job.model_id, "--quiet"]
    return Command(argv, env, None, _find_in_home(job))


def peer_runanywhere_cli_nondurable(job: Job) -> Command:
    return peer_runanywhere_cli(job, durable=False)


def peer_curl(job: Job) -> Command:
    out = job.workdir / job.name
    return Command(["curl", "-sS", "--fail", "-L", "-o", str(out), job.url], base_env(job), out)


def peer_aria2c(job: Job) -> Command:
    out = job.workdir / job.name
    argv = ["aria2c", "-x8", "-s8", "-k1M", "--file-allocation=none", "--allow-overwrite=true",
            "--auto-file-renaming=false", "--console-log-level=error", "--summary-interval=0",
            "--download-result=hide", "-q", "-d", str(job.workdir), "-o", job.name]
    if job.ca_file is not None:
        argv.append(f"--ca-certificate={job.ca_file}")
    return Command([*argv, job.url], base_env(job), out)


def peer_urllib(job: Job) -> Command:
    return _py_child(job, "urllib", {"url": job.url, "out": str(job.workdir / job.name),
                                     "sha256": job.sha256})


def peer_requests(job: Job) -> Command:
    return _py_child(job, "requests", {"url": job.url, "out": str(job.workdir / job.name)})


def _hf_env(job: Job) -> dict[str, str]:
    return {"HF_ENDPOINT": job.hf_endpoint, "HF_HOME": str(job.workdir / "hf-home"),
            "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"}


def peer_hf_hub(job: Job) -> Command:
    args = {"repo": job.hf_repo, "file": job.name, "cache_dir": str(job.workdir / "hf-cache")}
    return _py_child(job, "hf_hub", args, _hf_env(job))


def peer_pooch(job: Job) -> Command:
    return _py_child(job, "pooch", {"url": job.url, "dir": str(job.workdir), "name": job.name,
                                    "sha256": job.sha256})


def peer_hf_transfer(job: Job) -> Command:
    args = {"endpoint": job.hf_endpoint, "repo": job.hf_repo, "file": job.name,
            "out": str(job.workdir / job.name)}
    return _py_child(job, "hf_transfer", args, _hf_env(job))


PEERS: dict[str, Peer] = {p.name: p for p in [
    Peer("ra-api", "runanywhere API", peer_runanywhere_api, ("runanywhere:ModelRegistry",),
         runanywhere=True, verifies=True, note="durable (fsync before publish)"),
    Peer("ra-api-nd", "runanywhere API, non-durable", peer_runanywhere_api_nondurable,
         ("runanywhere:ModelRegistry",), runanywhere=True, verifies=True,
         note="RUNANYWHERE_DURABLE=0"),
    Peer("ra-cli", "runanywhere CLI", peer_runanywhere_cli, ("runanywhere.cli.main:main",),
         runanywhere=True, verifies=True, note="`pull --quiet`, durable"),
    Peer("ra-cli-nd", "runanywhere CLI, non-durable", peer_runanywhere_cli_nondurable,
         ("runanywhere.cli.main:main",), runanywhere=True, verifies=True,
         note="RUNANYWHERE_DURABLE=0"),
    Peer("curl", "curl", peer_curl, ("exe:curl",), note="`curl -sS --fail -L -o`"),
    Peer("aria2c", "aria2c -x8", peer_aria2c, ("exe:aria2c",),
         note="`-x8 -s8 -k1M --file-allocation=none --ca-certificate=CA`"),
    Peer("urllib", "urllib + sha256", peer_urllib, (), verifies=True,
         note="`urlopen` (follows the 302), 1 MiB reads, inline sha256"),
    Peer("requests", "requests", peer_requests, ("requests",),
         note="`get(stream=True).iter_content(1 MiB)`, not verified"),
    Peer("hf_hub", "hf_hub_download", peer_hf_hub, ("huggingface_hub",),
         note="`HF_ENDPOINT` = the fake Hub, Xet off; checks the size, not the sha256"),
    Peer("pooch", "pooch.retrieve", peer_pooch, ("pooch",), verifies=True,
         note="known_hash sha256"),
    Peer("hf_transfer", "hf_transfer", peer_hf_transfer, ("hf_transfer",),
         note="as huggingface_hub < 1.0 with HF_HUB_ENABLE_HF_TRANSFER=1: HEAD the resolve URL "
              "on `HF_ENDPOINT`, then `download(Location, max_files=100, chunk_size=10 MiB)`; "
              "not verified"),
]}
RUNANYWHERE_PEERS = [n for n, p in PEERS.items() if p.runanywhere]


def check_available(peer: Peer) -> str | None:
    """None if the peer can run, else a one-line reason."""
    for need in peer.needs:
        if need.startswith("exe:"):
            if shutil.which(need[4:]) is None:
                return f"{need[4:]} not found on PATH"
            continue
        module, _, attr = need.partition(":")
        code = f"from {module} import {attr}" if attr else f"import {module}"
        env = base_env()
        if peer.runanywhere:
            env.update(ra_pythonpath())
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
            return lines[-1] if lines else f"exit {r.returncode}"
    return None


def ra_pythonpath() -> dict[str, str]:
    """``PYTHONPATH`` with the runanywhere a run measures (``RA_SRC``) first."""
    pp = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(RA_SRC) + (os.pathsep + pp if pp else "")}


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def _tail(path: Path, n: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(RESULT_TAG)]
    return (lines[-1] if lines else "")[-n:]


_GNU_TIME: str | None = None


def gnu_time() -> str | None:
    """GNU time, if installed: it forks from a ~2 MiB process, so its ``%M`` is the peer's own peak.

    ``ru_maxrss`` from our own ``wait4`` is not: Linux keeps a process's RSS high-water mark
    across ``exec``, and a child spawned by this (large) Python process starts from the parent's
    mark. Without GNU time we fall back to that figure and say so in the report.
    """
    global _GNU_TIME
    if _GNU_TIME is None:
        _GNU_TIME = ""
        for exe in ("/usr/bin/time", shutil.which("gtime") or ""):
            if exe and os.access(exe, os.X_OK):
                r = subprocess.run([exe, "--version"], capture_output=True, text=True)
                if "GNU" in r.stdout + r.stderr:
                    _GNU_TIME = exe
                    break
    return _GNU_TIME or None


def rss_method() -> str:
    exe = gnu_time()
    return (f"child's own ru_maxrss via GNU time ({exe} -f %M; includes ~2 MiB of time itself)"
            if exe else "ru_maxrss from wait4 (GNU time missing: includes the harness's own "
                        "high-water mark, so small peers read too high)")


def measure(peer: Peer, job: Job, rep: int, timeout: float) -> Measurement:
    job.workdir.mkdir(parents=True, exist_ok=False)
    cmd = peer.build(job)
    out_log, err_log = job.workdir / "stdout.log", job.workdir / "stderr.log"
    rss_file = job.workdir / "maxrss.txt"
    argv = cmd.argv
    if gnu_time():
        argv = [gnu_time(), "-f", "%M", "-o", str(rss_file), *argv]  # type: ignore[list-item]
    m = Measurement(peer.name, job.size, job.route, rep, ok=False)
    with open(out_log, "wb") as so, open(err_log, "wb") as se:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=cmd.env, stdin=subprocess.DEVNULL, stdout=so,
                                stderr=se, cwd=job.workdir, start_new_session=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        m.wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped by wait4
    m.cpu_user, m.cpu_sys = ru.ru_utime, ru.ru_stime
    m.cpu = ru.ru_utime + ru.ru_stime
    m.peak_rss_mib = ru.ru_maxrss / 1024  # Linux: KiB
    if gnu_time():
        try:
            lines = [ln for ln in rss_file.read_text().splitlines() if ln.strip()]
            m.peak_rss_mib = int(lines[-1]) / 1024
        except (OSError, ValueError, IndexError):
            pass

    result: dict[str, object] = {}
    try:
        for line in out_log.read_text(errors="replace").splitlines():
            if line.startswith(RESULT_TAG):
                result = json.loads(line[len(RESULT_TAG):])
    except (OSError, ValueError):
        pass
    if isinstance(result.get("inner"), (int, float)):
        m.inner = float(result["inner"])  # type: ignore[arg-type]

    if timed_out.is_set():
        m.error = f"timed out after {timeout:.0f} s"
        return m
    if proc.returncode != 0:
        m.error = f"exit {proc.returncode}: {_tail(err_log) or _tail(out_log)}"
        return m
    path: Path | None = cmd.output
    if result.get("path"):
        path = Path(str(result["path"]))
    if path is None and cmd.find_output is not None:
        path = cmd.find_output()
    if path is None:
        m.error = "no output file found"
        return m
    try:
        real = path.resolve()
        size = real.stat().st_size
        if size != job.size:
            m.error = f"wrong size: {size} bytes, expected {job.size}"
            return m
        digest = sha256_file(real)
    except OSError as e:
        m.error = f"cannot read output: {e}"
        return m
    if digest != job.sha256:
        m.error = f"wrong bytes: sha256 {digest[:12]}..., expected {job.sha256[:12]}..."
        return m
    m.ok = True
    return m
