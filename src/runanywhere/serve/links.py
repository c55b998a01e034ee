"""The links answers hand out to files, and the capabilities their signatures name.

``/v1/models/{id}/files/{path}`` names a model's file (capability ``file:<id>/<path>``);
``/blobs/sha256/{hex}[/{name}]`` names bytes (capability ``blob:<hex>``). With a token, the
links in ``/catalog.json`` and the ``blob_url`` of ``/v1/models`` carry ``?sig=`` so a client
without the token can still fetch exactly those (auth.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from .auth import TokenAuth


def file_path(model_id: str, path: str) -> str:
    return f"/v1/models/{model_id}/files/{quote(path)}"


def blob_path(sha256: str, path: str) -> str:
    return f"/blobs/sha256/{sha256}/{quote(path.rsplit('/', 1)[-1])}"


def file_capability(params: Mapping[str, str]) -> str:
    return f"file:{params['id']}/{params['path']}"


def blob_capability(params: Mapping[str, str]) -> str:
    return f"blob:{params['hex']}"


def signed_file_url(auth: TokenAuth, base: str, model_id: str, path: str) -> str:
    return auth.signed(base + file_path(model_id, path),
                       file_capability({"id": model_id, "path": path}))


def signed_blob_url(auth: TokenAuth, base: str, sha256: str, path: str) -> str:
    return auth.signed(base + blob_path(sha256, path), blob_capability({"hex": sha256}))
