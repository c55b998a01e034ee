"""A throwaway certificate authority and one server certificate, made at start with trustme.

The CA exists only in the server's temporary folder; clients trust it through ``ca_file``
(``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, or ``ssl_context()``), never
through the system store.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: Names every server certificate covers; add more with ``extra_names``.
DEFAULT_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class ServerTLS:
    ca_file: Path  # PEM of the certificate authority: what a client must trust
    cert_file: Path  # PEM chain of the server certificate (nginx ``ssl_certificate``)
    key_file: Path  # PEM private key (nginx ``ssl_certificate_key``)
    names: tuple[str, ...]

    def env(self) -> dict[str, str]:
        """The variables through which OpenSSL, requests/httpx and curl find the CA."""
        ca = str(self.ca_file)
        return {"SSL_CERT_FILE": ca, "REQUESTS_CA_BUNDLE": ca, "CURL_CA_BUNDLE": ca}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only (hostname checks on)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_server_tls(folder: Path, extra_names: Sequence[str] = ()) -> ServerTLS:
    """A new CA and a server certificate for 127.0.0.1, localhost and ``extra_names``."""
    import trustme  # the 'test' and 'bench' extras; imported only when TLS is asked for

    folder.mkdir(parents=True, exist_ok=True)
    names = tuple(dict.fromkeys([*DEFAULT_NAMES, *extra_names]))
    ca = trustme.CA(organization_name="runanywhere test harness")
    cert = ca.issue_cert(*names)
    tls = ServerTLS(folder / "ca.pem", folder / "server-chain.pem", folder / "server.key", names)
    ca.cert_pem.write_to_path(str(tls.ca_file))
    tls.cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(tls.key_file))
    tls.key_file.chmod(0o600)
    return tls
