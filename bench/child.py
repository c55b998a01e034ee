"""The inside of each Python peer, run in a fresh interpreter: ``python child.py NAME ARGS_JSON``.

Top-level imports are only what every child needs, so the RSS and start-up of a peer is its own
library's. Each prints ``@@RESULT {"path": ..., "inner": seconds}`` where ``inner`` is the download
call alone.
"""

import json
import sys
import time

RESULT_TAG = "@@RESULT "
MiB = 2**20


def _report(path, inner):
    print(RESULT_TAG + json.dumps({"path": str(path), "inner": inner}), flush=True)


def urllib_(a):
    import hashlib
    import urllib.request

    t = time.perf_counter()
    h = hashlib.sha256()
    with urllib.request.urlopen(a["url"], timeout=60) as r, open(a["out"], "wb") as f:
        while chunk := r.read(MiB):
            h.update(chunk)
            f.write(chunk)
    if h.hexdigest() != a["sha256"]:
        sys.exit(f"sha256 mismatch: got {h.hexdigest()}")
    _report(a["out"], time.perf_counter() - t)


def requests_(a):
    import requests

    t = time.perf_counter()
    with requests.get(a["url"], stream=True, timeout=60) as r, open(a["out"], "wb") as f:
        r.raise_for_status()
        for chunk in r.iter_content(MiB):
            f.write(chunk)
    _report(a["out"], time.perf_counter() - t)


def hf_hub(a):
    from huggingface_hub import hf_hub_download  # the Hub is HF_ENDPOINT, as users set it

    t = time.perf_counter()
    path = hf_hub_download(a["repo"], a["file"], revision="main", cache_dir=a["cache_dir"])
    _report(path, time.perf_counter() - t)


def pooch_(a):
    import pooch

    t = time.perf_counter()
    path = pooch.retrieve(a["url"], known_hash="sha256:" + a["sha256"], fname=a["name"],
                          path=a["dir"], progressbar=False)
    _report(path, time.perf_counter() - t)


def hf_transfer_(a):
    """What huggingface_hub < 1.0 did with HF_HUB_ENABLE_HF_TRANSFER=1 (1.0 dropped it): a HEAD
    on the resolve URL without following the redirect (``get_hf_file_metadata``), then
    ``hf_transfer.download`` of the ``Location`` (``http_get``: HF_TRANSFER_CONCURRENCY = 100,
    DOWNLOAD_CHUNK_SIZE = 10 MiB). No sha256 check."""
    import http.client
    import ssl
    import urllib.parse

    import hf_transfer

    t = time.perf_counter()
    url = f"{a['endpoint']}/{a['repo']}/resolve/main/{a['file']}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=60,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("HEAD", parts.path, headers={"Accept-Encoding": "identity"})
    r = conn.getresponse()
    r.read()
    conn.close()
    if r.status in (301, 302, 303, 307, 308):
        url = urllib.parse.urljoin(url, r.headers["Location"])
    elif r.status != 200:
        sys.exit(f"HEAD {url}: {r.status}")
    hf_transfer.download(url=url, filename=a["out"], max_files=100, chunk_size=10 * MiB,
                         parallel_failures=3, max_retries=5)
    _report(a["out"], time.perf_counter() - t)


def runanywhere_api(a):
    import asyncio

    from runanywhere import ModelRegistry

    options = {}
    if a.get("fetch"):  # bench.run --ra-config: FetchConfig fields by flat name, for experiments
        from runanywhere.transfer import FetchConfig
        from runanywhere.transfer.config import replace_flat

        options["fetch_config"] = replace_flat(FetchConfig(), **a["fetch"])

    async def main():
        reg = ModelRegistry(home=a["home"], catalogs=[a["catalog"]], **options)
        await reg.initialize()
        t = time.perf_counter()
        r = await reg.download_model(a["id"])
        path = r.unwrap()
        return path, time.perf_counter() - t

    path, inner = asyncio.run(main())
    _report(path, inner)


CHILDREN = {"urllib": urllib_, "requests": requests_, "hf_hub": hf_hub, "pooch": pooch_,
            "hf_transfer": hf_transfer_, "runanywhere_api": runanywhere_api}

if __name__ == "__main__":
    CHILDREN[sys.argv[1]](json.loads(sys.argv[2]))
