"""Where the documents' encrypted objects live: an S3 bucket (the distributed mode) or a
directory of the local filesystem (the embedded mode), behind one small interface.

A backend stores and returns opaque bytes under opaque keys; it never sees a plaintext, a file
name or a document key (`services.documents.vault` encrypts before and decrypts after). Every
failure of the store itself — unreachable, refused, timed out, full, misconfigured — comes out
as `StorageUnavailable`, never as a botocore or OS error, so that a page can say
"armazenamento indisponível".

What a backend holds is listed by `iter_objects()` for the orphan sweep, including what a failed
write may have left behind (an S3 multipart upload that could not be aborted because the store
went down, a temporary file of a killed process): `delete(key)` removes those too.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

PREFIX = "d/"
# "d/<2 hex>/<32 hex>"; the filesystem's temporary files add ".<16 hex>.tmp"
KEY_PATTERN = re.compile(r"d/[0-9a-f]{2}/[0-9a-f]{32}(\.[0-9a-f]{16}\.tmp)?")
READ_SIZE = 256 * 1024
# S3's smallest part but the last is 5 MiB: parts a little above it keep the memory of an upload
# constant and small (one part buffered at a time).
PART_SIZE = 5 * 1024 * 1024


class StorageUnavailable(Exception):
    """The object store cannot be used right now (down, unreachable, refusing, full)."""


class MissingObject(Exception):
    """No object under this key (the vault reports it as an integrity failure)."""


def check_key(key: str) -> str:
    if not KEY_PATTERN.fullmatch(key):
        raise ValueError("not a documents object key")
    return key


class Backend(Protocol):
    def put(self, key: str, chunks: Iterable[bytes]) -> None:
        """Store the concatenation of `chunks` under `key`. When iterating `chunks` raises, or the
        store fails, nothing stays under `key` (as far as the store can be reached) and the error
        propagates (a store failure as StorageUnavailable)."""

    def get(self, key: str) -> Iterator[bytes]:
        """The object's bytes in pieces. Reaches the store before returning (StorageUnavailable,
        MissingObject); a failure while streaming raises StorageUnavailable from the iterator."""

    def delete(self, key: str) -> None: ...

    def iter_objects(self) -> Iterator[tuple[str, datetime]]: ...

    def check(self) -> None: ...

    def ensure_bucket(self) -> None: ...


# --------------------------------------------------------------------------- local filesystem


class FilesystemBackend:
    """Objects as files under `root` (root/d/ab/<hex>), written to a temporary file beside the
    target, flushed to disk and renamed: a reader never sees half an object."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, chunks: Iterable[bytes]) -> None:
        target = self._path(key)
        tmp = target.with_name(f"{target.name}.{secrets.token_hex(8)}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise StorageUnavailable(f"documents directory not writable: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:  # the caller's errors (TooLarge, a dropped upload) propagate as they are
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise StorageUnavailable(f"writing a document failed: {exc.strerror}") from exc
                try:
                    out.flush()
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise StorageUnavailable(f"writing a document failed: {exc.strerror}") from exc
            try:
                os.replace(tmp, target)
                _fsync_dir(target.parent)
            except OSError as exc:
                raise StorageUnavailable(f"writing a document failed: {exc.strerror}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def get(self, key: str) -> Iterator[bytes]:
        try:
            f = open(self._path(key), "rb")  # closed by _read
        except FileNotFoundError:
            raise MissingObject(key) from None
        except OSError as exc:
            raise StorageUnavailable(f"reading a document failed: {exc.strerror}") from exc
        return self._read(f)

    @staticmethod
    def _read(f) -> Iterator[bytes]:
        with f:
            while True:
                try:
                    piece = f.read(READ_SIZE)
                except OSError as exc:
                    raise StorageUnavailable(f"reading a document failed: {exc.strerror}") from exc
                if not piece:
                    return
                yield piece

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"deleting a document failed: {exc.strerror}") from exc

    def iter_objects(self) -> Iterator[tuple[str, datetime]]:
        base = self.root / PREFIX
        try:
            fanout = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
            for directory in fanout:
                for path in sorted(directory.iterdir()):
                    key = f"{PREFIX}{directory.name}/{path.name}"
                    if not KEY_PATTERN.fullmatch(key):
                        continue
                    try:
                        mtime = path.stat().st_mtime
                    except FileNotFoundError:  # deleted or renamed meanwhile
                        continue
                    yield key, datetime.fromtimestamp(mtime, UTC)
        except OSError as exc:
            raise StorageUnavailable(f"listing documents failed: {exc.strerror}") from exc

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"documents directory unusable: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable("documents directory not writable")

    def ensure_bucket(self) -> None:
        self.check()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- S3


def s3_client(endpoint: str, region: str, **credentials) -> S3Client:
    """A boto3 S3 client with short timeouts and few retries (a request to a dead store fails in
    seconds, not minutes), path-style addressing (SeaweedFS, MinIO) and checksums only where S3
    requires them (third-party stores do not all take the newer ones). Contacts nobody.

    Built by botocore's own session: boto3's `Session().client("s3")` is this very client (boto3
    adds resources and the managed-transfer helpers, which nothing here uses) plus the import of
    boto3 and s3transfer (~2 MB in every documents web worker). Credentials, region and
    configuration come from the same environment and files."""
    import botocore.session
    from botocore.config import Config as BotoConfig

    boto_config = BotoConfig(
        connect_timeout=3, read_timeout=20, retries={"max_attempts": 2, "mode": "standard"},
        s3={"addressing_style": "path"}, signature_version="s3v4",
        request_checksum_calculation="when_required", response_checksum_validation="when_required")
    client = botocore.session.get_session().create_client("s3", endpoint_url=endpoint, region_name=region,
                                                          config=boto_config, **credentials)
    return cast("S3Client", client)


def _unavailable(exc: Exception, doing: str) -> StorageUnavailable:
    """The store's failure as StorageUnavailable, with what was being done and the error's kind
    (an S3 error code, an exception class): nothing of the document, no credentials."""
    from botocore.exceptions import ClientError
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"{err.get('Code', '?')} (HTTP {status})"
    else:
        detail = type(exc).__name__
    return StorageUnavailable(f"object storage unavailable while {doing}: {detail}")


def _store_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError
    return (BotoCoreError, ClientError, HTTPError, OSError)


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError
    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound")


class S3Backend:
    """Objects in one bucket of an S3 API store. Small objects go in one PutObject; larger ones
    as a multipart upload of ~5 MiB parts, one part in memory at a time, aborted on any failure."""

    def __init__(self, endpoint: str, bucket: str, region: str, *, client: S3Client | None = None):
        self.endpoint = endpoint
        self.bucket = bucket
        self.client = client or s3_client(endpoint, region)
        self._errors = _store_errors()

    def ensure_bucket(self) -> None:
        """Create the bucket when missing (tests, a one-machine setup; in production it is the
        operator's job)."""
        from botocore.exceptions import ClientError
        try:
            self.client.create_bucket(Bucket=self.bucket)
        except self._errors as exc:
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
                    "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            raise _unavailable(exc, "creating the bucket") from exc

    def put(self, key: str, chunks: Iterable[bytes]) -> None:
        check_key(key)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict] = []
        try:
            for chunk in chunks:  # the caller's errors propagate as they are (the upload is aborted)
                buffer += chunk
                if len(buffer) >= PART_SIZE:
                    if upload_id is None:
                        upload_id = self._call("starting an upload", self.client.create_multipart_upload,
                                               Bucket=self.bucket, Key=key)["UploadId"]
                    self._upload_part(key, upload_id, parts, buffer)
                    buffer.clear()
            if upload_id is None:
                self._call("storing a document", self.client.put_object,
                           Bucket=self.bucket, Key=key, Body=bytes(buffer))
                return
            if buffer or not parts:
                self._upload_part(key, upload_id, parts, buffer)
                buffer.clear()
            self._call("completing an upload", self.client.complete_multipart_upload,
                       Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            if upload_id is not None:
                self._abort(key, upload_id)
            raise

    def _upload_part(self, key: str, upload_id: str, parts: list[dict], buffer: bytearray) -> None:
        number = len(parts) + 1
        answer = self._call("uploading a document", self.client.upload_part, Bucket=self.bucket, Key=key,
                            UploadId=upload_id, PartNumber=number, Body=bytes(buffer))
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except self._errors as exc:
            # The store is down: the pending upload is listed by iter_objects and removed by the sweep.
            log.warning("could not abort the upload of %s (%s); the orphan sweep will remove it",
                        key, type(exc).__name__)

    def _call(self, doing: str, method, **kwargs):
        try:
            return method(**kwargs)
        except self._errors as exc:
            raise _unavailable(exc, doing) from exc

    def get(self, key: str) -> Iterator[bytes]:
        check_key(key)
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        except self._errors as exc:
            if _is_missing(exc):
                raise MissingObject(key) from None
            raise _unavailable(exc, "reading a document") from exc
        return self._read(answer["Body"])

    def _read(self, body) -> Iterator[bytes]:
        try:
            while True:
                try:
                    piece = body.read(READ_SIZE)
                except self._errors as exc:
                    raise _unavailable(exc, "reading a document") from exc
                if not piece:
                    return
                yield piece
        finally:
            body.close()

    def delete(self, key: str) -> None:
        """Remove the object and any upload of that key still pending (idempotent)."""
        check_key(key)
        self._call("deleting a document", self.client.delete_object, Bucket=self.bucket, Key=key)
        for pending_key, upload_id, _ in self._pending_uploads(prefix=key):
            if pending_key == key:
                self._call("aborting an upload", self.client.abort_multipart_upload,
                           Bucket=self.bucket, Key=key, UploadId=upload_id)

    def iter_objects(self) -> Iterator[tuple[str, datetime]]:
        """Every object under d/, then every pending multipart upload (its start time); a key may
        come twice."""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=PREFIX)
            for page in pages:
                for item in page.get("Contents", []):
                    if KEY_PATTERN.fullmatch(item["Key"]):
                        yield item["Key"], item["LastModified"].astimezone(UTC)
        except self._errors as exc:
            raise _unavailable(exc, "listing documents") from exc
        for key, _, initiated in self._pending_uploads(prefix=PREFIX):
            if KEY_PATTERN.fullmatch(key):
                yield key, initiated

    def _pending_uploads(self, *, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for upload in page.get("Uploads", []):
                    yield upload["Key"], upload["UploadId"], upload["Initiated"].astimezone(UTC)
        except self._errors as exc:
            raise _unavailable(exc, "listing pending uploads") from exc

    def check(self) -> None:
        self._call("checking the bucket", self.client.head_bucket, Bucket=self.bucket)
