"""The benchmark's origin: the harness's nginx (``harness/nginx.py``) with the benchmark's routes.

Routes (all serve the payload folder):

* ``/full/<file>``  full speed, ``sendfile on``, ``etag on``; Range works as nginx always does.
* ``/slow/<file>``  the same with ``limit_rate 75m`` per connection (about 78.6 MB/s), the kind of
  cap one CDN connection gives; parallel-range downloaders are not capped as a whole.
* ``/hf/<repo>/resolve/<rev>/<file>`` and ``/hf-slow/...``: just enough of the Hugging Face Hub
  for ``hf_hub_download(repo, file, endpoint="http://127.0.0.1:PORT/hf")`` to run offline
  (``harness.nginx.hub_direct_routes``). ``huggingface_hub.file_download.get_hf_file_metadata``
  sends a HEAD and reads ``X-Repo-Commit`` (required, else ``FileMetadataError``),
  ``X-Linked-Etag`` or ``ETag`` (required) and ``X-Linked-Size`` or ``Content-Length``; with no
  ``X-Xet-*`` header it downloads over plain HTTP GET (with Range on retries). For an LFS file the
  Hub's ETag is the quoted sha256 of the file, so that is what we send.

nginx itself (temporary folder, ``daemon off``, keep-alive, SIGQUIT then SIGKILL, its access
log) is the harness's, the same the tests use.
"""

from __future__ import annotations

from pathlib import Path

from harness.nginx import Nginx, Route, Served, hub_direct_routes

HF_REPO = "bench/payloads"
HF_REVISION = "main"
#: A fixed 40-hex commit id for the fake repo (what X-Repo-Commit must look like).
HF_COMMIT = "0123456789abcdef0123456789abcdef01234567"
SLOW_RATE = "75m"

__all__ = ["HF_COMMIT", "HF_REPO", "HF_REVISION", "SLOW_RATE", "Origin", "Served"]


class Origin:
    """``with Origin(payload_dir, files) as srv: srv.url("full", name)``."""

    def __init__(self, payload_dir: Path, files: list[Served], slow_rate: str = SLOW_RATE
                 ) -> None:
        self.payload_dir = Path(payload_dir).resolve()
        self.files = files
        self.slow_rate = slow_rate  # limit_rate per connection on /slow/ and /hf-slow/
        d = self.payload_dir
        routes = (
            Route("/full/", folder=d),
            Route("/slow/", folder=d, rate=slow_rate),
            *hub_direct_routes("/hf", HF_REPO, d, files, HF_COMMIT, revision=HF_REVISION),
            *hub_direct_routes("/hf-slow", HF_REPO, d, files, HF_COMMIT, rate=slow_rate,
                               revision=HF_REVISION),
        )
        self.nginx = Nginx(d, routes=routes)

    # -- addresses --------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        return self.nginx.url

    @property
    def tmp(self) -> Path:
        """Config and logs of the running nginx."""
        return self.nginx.tmp

    def url(self, route: str, name: str) -> str:
        """A plain file URL on ``full`` or ``slow``."""
        return f"{self.base}/{route}/{name}"

    def hf_endpoint(self, route: str) -> str:
        return f"{self.base}/hf" if route == "full" else f"{self.base}/hf-slow"

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> Origin:
        self.nginx.start()
        return self

    def stop(self) -> None:
        self.nginx.stop()

    def bytes_served(self) -> int:
        """Body bytes nginx has sent so far, over every request (from its access log)."""
        return self.nginx.bytes_served()

    def __enter__(self) -> Origin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
