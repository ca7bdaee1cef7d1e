"""The documents' vault: every file encrypted with a key of its own before it reaches the object
store, and checked on every read.

Stored object (all the store ever sees; no name, no metadata):

    header  = b"BDV1" || prefix            (prefix: 8 random bytes per object)
    chunk i = AES-256-GCM(document key, nonce = prefix || i (4 bytes, big-endian),
                          plaintext[i*64 KiB : (i+1)*64 KiB],
                          associated data = header || i (4 bytes) || last (1 byte: 1 on the last chunk))

An object is the header and its chunks, each 64 KiB + 16 bytes of tag but the last (an empty
file is the header and one empty last chunk). A chunk moved, dropped, altered, or the object
cut at a chunk boundary fails authentication; the SHA-256 of the plaintext, computed while
storing and kept by the caller, is checked once the last chunk is read.

The document key (32 random bytes) is wrapped by the master key: `01 || key id (4 bytes) ||
AES-KW(KEK, document key)`, 45 bytes, where the KEK is derived from the master key with HKDF
and the key id is a fingerprint of the master key, so that a later rotation can keep the old
master keys for unwrapping (`Vault(..., previous_masters=[...])`) while wrapping with the new.
The master key is BALCAO_DOCUMENTS_KEY (base64 of 32 bytes) or, when unset,
`<keys_dir>/documents-master-key`, created on first use (mode 0600).

Memory stays constant whatever the size: the plaintext is read, encrypted and sent 64 KiB at a
time (S3: ~5 MiB multipart parts, one at a time) and read back the same way.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from services.common.keys import documents_master_key

from .storage import Backend, FilesystemBackend, MissingObject, S3Backend, StorageUnavailable, check_key

__all__ = ["IntegrityFailure", "Stored", "StorageUnavailable", "Storing", "TooLarge", "Vault", "vault_from_config"]

log = logging.getLogger(__name__)

MAGIC = b"BDV1"
PREFIX_SIZE = 8
HEADER_SIZE = len(MAGIC) + PREFIX_SIZE
CHUNK_SIZE = 64 * 1024          # plaintext bytes per chunk
TAG_SIZE = 16
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
MAX_CHUNKS = 2 ** 32            # the chunk counter's 4 bytes
WRAP_VERSION = b"\x01"
KEY_ID_SIZE = 4


class IntegrityFailure(Exception):
    """A stored document is not what was stored: altered, cut, swapped, missing, or its key does
    not unwrap with any master key this service has."""


class TooLarge(Exception):
    """The stream had more than the `max_bytes` allowed (nothing was kept)."""


@dataclass(frozen=True)
class Stored:
    object_key: str     # where the ciphertext is, random: "d/<2 hex>/<32 hex>"
    wrapped_key: bytes  # the document key wrapped by the master key (45 bytes)
    sha256: str         # hex SHA-256 of the plaintext
    size: int           # plaintext bytes


class MasterKey:
    def __init__(self, secret: bytes):
        if len(secret) != 32:
            raise ValueError("the documents master key must be 32 bytes (base64 in BALCAO_DOCUMENTS_KEY)")
        self.key_id = hashlib.sha256(b"balcao-documents-key-id\x00" + secret).digest()[:KEY_ID_SIZE]
        self._kek = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                         info=b"balcao-documents-kek").derive(secret)

    def wrap(self, document_key: bytes) -> bytes:
        return WRAP_VERSION + self.key_id + aes_key_wrap(self._kek, document_key)

    def unwrap(self, wrapped: bytes) -> bytes:
        return aes_key_unwrap(self._kek, wrapped[1 + KEY_ID_SIZE:])


def new_object_key() -> str:
    name = uuid.uuid4().hex
    return f"d/{name[:2]}/{name}"


class Vault:
    def __init__(self, backend: Backend, master: bytes, *, previous_masters: Iterable[bytes] = ()):
        self.backend = backend
        self._master = MasterKey(master)
        self._masters = {k.key_id: k for k in (MasterKey(m) for m in previous_masters)}
        self._masters[self._master.key_id] = self._master

    # ---- storing

    def store(self, stream: BinaryIO, *, max_bytes: int | None = None) -> Stored:
        """Read `stream` to its end, encrypt it and store it under a new random key. TooLarge as
        soon as more than `max_bytes` were read; StorageUnavailable when the store fails; either
        way (and on an error of `stream` itself) nothing stays stored."""
        document_key = secrets.token_bytes(32)
        sealing = _Sealing(stream, document_key, max_bytes)
        object_key = new_object_key()
        self.backend.put(object_key, sealing)
        return Stored(object_key=object_key, wrapped_key=self._master.wrap(document_key),
                      sha256=sealing.digest.hexdigest(), size=sealing.size)

    def start_store(self, stream: BinaryIO, *, max_bytes: int | None = None) -> Storing:
        """`store` in a thread of this process, so that the caller works while the bytes travel to
        the store (an upload's checks and its document's row). The caller leaves `stream` alone
        until `Storing.read()` returns (the stream has then been read to its end: its SHA-256 and
        size are known; a file under one S3 part is still being uploaded), and ends with either
        `Storing.result()` or `Storing.discard()`."""
        document_key = secrets.token_bytes(32)
        sealing = _Sealing(stream, document_key, max_bytes)
        object_key = new_object_key()

        def run() -> None:
            try:
                self.backend.put(object_key, sealing)
            finally:
                sealing.finished.set()  # also when the store failed before the end of the stream

        return Storing(self, object_key, self._master.wrap(document_key), sealing, _store_threads().submit(run))

    # ---- reading

    def open(self, object_key: str, wrapped_key: bytes, sha256: str) -> Iterator[bytes]:
        """The plaintext in chunks. The key is unwrapped and the store reached before this returns
        (IntegrityFailure, StorageUnavailable: nothing was sent yet); while iterating, a chunk
        that fails authentication, a cut object or a SHA-256 other than `sha256` raises
        IntegrityFailure — the hash before the last chunk is given out, so a consumer never
        receives a whole altered file."""
        document_key = self._unwrap(wrapped_key)
        try:
            pieces = self.backend.get(check_key(object_key))
        except MissingObject:
            raise IntegrityFailure("the document's object is missing from the store") from None
        return _unseal(pieces, document_key, sha256)

    def _unwrap(self, wrapped: bytes) -> bytes:
        wrapped = bytes(wrapped)
        if len(wrapped) != 1 + KEY_ID_SIZE + 40 or wrapped[:1] != WRAP_VERSION:
            raise IntegrityFailure("not a wrapped document key")
        master = self._masters.get(wrapped[1:1 + KEY_ID_SIZE])
        if master is None:
            raise IntegrityFailure("the document key was wrapped by a master key this service does not have")
        try:
            return master.unwrap(wrapped)
        except InvalidUnwrap:
            raise IntegrityFailure("the document key does not unwrap") from None

    # ---- the store

    def delete(self, object_key: str) -> None:
        """Remove the object (and, on S3, any pending upload of that key). Idempotent."""
        self.backend.delete(object_key)

    def iter_objects(self) -> Iterator[tuple[str, datetime]]:
        """(object key, last modified, aware UTC) of everything stored, including the leftovers of
        uploads that failed while the store was down (S3: pending multipart uploads with their
        start time, maybe a key twice; filesystem: temporary files). The orphan sweep deletes the
        keys no document references — after a grace period, since an upload in progress shows
        here before its document row is committed."""
        return self.backend.iter_objects()

    def check(self) -> None:
        """StorageUnavailable unless the store answers (for /readyz)."""
        self.backend.check()

    def ensure_bucket(self) -> None:
        """Create the bucket (S3) or the directory (filesystem) when missing."""
        self.backend.ensure_bucket()

    def raw_objects(self) -> Iterator[bytes]:
        """Tests only: every stored object's raw bytes (ciphertext), as the store holds them."""
        for key, _ in self.backend.iter_objects():
            try:
                yield b"".join(self.backend.get(key))
            except MissingObject:  # a pending upload: nothing readable yet
                continue


class Storing:
    """A store under way in a thread (`Vault.start_store`): the object's key and wrapped key are
    known at once, the plaintext's SHA-256 and size once the stream is read (`read`), the object
    is in the store once `result` returns."""

    def __init__(self, vault: Vault, object_key: str, wrapped_key: bytes, sealing: _Sealing, future: Future):
        self._vault = vault
        self.object_key = object_key
        self.wrapped_key = wrapped_key
        self._sealing = sealing
        self._future = future

    def read(self) -> Stored:
        """What `result` will return, as soon as the stream has been read to its end (the upload
        may still be under way). Raises what the store raised when it stopped before the end of
        the stream (TooLarge, StorageUnavailable, the stream's own error)."""
        self._sealing.finished.wait()
        if not self._sealing.complete:
            self._future.result()  # raises why it stopped
            raise IntegrityFailure("the store ended before the end of the stream")  # not reached
        return Stored(object_key=self.object_key, wrapped_key=self.wrapped_key,
                      sha256=self._sealing.digest.hexdigest(), size=self._sealing.size)

    def result(self) -> Stored:
        """The object stored (waits for the store). TooLarge, StorageUnavailable or the stream's
        error as `Vault.store` raises them (nothing stays stored then)."""
        self._future.result()
        return self.read()

    def discard(self) -> None:
        """Wait for the store to end, and delete the object if it was stored. When the store
        cannot be reached now, the orphan sweep removes it later."""
        try:
            self._future.result()
        except Exception:
            return  # a failed store leaves nothing stored
        try:
            self._vault.delete(self.object_key)
        except StorageUnavailable:
            log.info("a discarded upload's object is left to the orphan sweep")


_threads_lock = threading.Lock()
_threads: tuple[int, ThreadPoolExecutor] | None = None
STORE_THREADS = 8


def _store_threads() -> ThreadPoolExecutor:
    """This process's threads for `Vault.start_store` (made on first use; a forked child makes its own)."""
    global _threads
    with _threads_lock:
        if _threads is None or _threads[0] != os.getpid():
            _threads = (os.getpid(), ThreadPoolExecutor(max_workers=STORE_THREADS,
                                                        thread_name_prefix="documents-store"))
        return _threads[1]


class _Sealing:
    """The ciphertext of `stream`, chunk by chunk (iterated once by the backend), counting the
    plaintext bytes and hashing them on the way. `complete` (and `finished`, an Event) once the
    stream has been read to its end: the digest and size are final."""

    def __init__(self, stream: BinaryIO, document_key: bytes, max_bytes: int | None):
        self.stream = stream
        self.aead = AESGCM(document_key)
        self.max_bytes = max_bytes
        self.digest = hashlib.sha256()
        self.size = 0
        self.complete = False
        self.finished = threading.Event()

    def _read(self) -> bytes:
        """Up to CHUNK_SIZE bytes, fewer only at the end of the stream."""
        parts: list[bytes] = []
        wanted = CHUNK_SIZE
        while wanted:
            piece = self.stream.read(wanted)
            if not piece:
                break
            parts.append(piece)
            wanted -= len(piece)
            self.size += len(piece)
            if self.max_bytes is not None and self.size > self.max_bytes:
                raise TooLarge(f"more than {self.max_bytes} bytes")
        data = b"".join(parts)
        self.digest.update(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        header = MAGIC + secrets.token_bytes(PREFIX_SIZE)
        yield header
        prefix = header[len(MAGIC):]
        index = 0
        pending = self._read()
        while True:
            following = self._read() if len(pending) == CHUNK_SIZE else b""
            last = not following
            if index >= MAX_CHUNKS:
                raise TooLarge("more chunks than one key may seal")
            if last:  # the stream is read: its digest and size are final, the caller may use it again
                self.complete = True
                self.finished.set()
            yield self.aead.encrypt(_nonce(prefix, index), pending, _associated(header, index, last))
            if last:
                return
            pending = following
            index += 1


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _associated(header: bytes, index: int, last: bool) -> bytes:
    return header + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _unseal(pieces: Iterator[bytes], document_key: bytes, sha256: str) -> Iterator[bytes]:
    aead = AESGCM(document_key)
    digest = hashlib.sha256()
    header: bytes | None = None
    index = 0
    buffer = bytearray()

    def open_chunk(sealed: bytes, last: bool) -> bytes:
        assert header is not None
        try:
            plain = aead.decrypt(_nonce(header[len(MAGIC):], index), sealed, _associated(header, index, last))
        except InvalidTag:
            raise IntegrityFailure(f"chunk {index} of the document fails authentication") from None
        digest.update(plain)
        return plain

    try:
        for piece in pieces:
            buffer += piece
            if header is None:
                if len(buffer) < HEADER_SIZE:
                    continue
                header = bytes(buffer[:HEADER_SIZE])
                del buffer[:HEADER_SIZE]
                if not header.startswith(MAGIC):
                    raise IntegrityFailure("not a documents object")
            while len(buffer) > SEALED_CHUNK_SIZE:  # more follows: not the last chunk
                plain = open_chunk(bytes(buffer[:SEALED_CHUNK_SIZE]), last=False)
                del buffer[:SEALED_CHUNK_SIZE]
                yield plain
                index += 1
        if header is None or len(buffer) < TAG_SIZE:
            raise IntegrityFailure("the document's object is cut short")
        plain = open_chunk(bytes(buffer), last=True)
        if not hmac.compare_digest(digest.hexdigest(), sha256.lower()):
            raise IntegrityFailure("the document's SHA-256 does not match")
        yield plain
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


# --------------------------------------------------------------------------- configuration


def master_key(config) -> bytes:
    """BALCAO_DOCUMENTS_KEY, else the key kept in <keys_dir>/documents-master-key (made once)."""
    if config.documents_key:
        try:
            key = base64.b64decode(config.documents_key, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("BALCAO_DOCUMENTS_KEY must be base64 of 32 bytes") from None
        if len(key) != 32:
            raise ValueError("BALCAO_DOCUMENTS_KEY must be base64 of 32 bytes")
        return key
    return base64.b64decode(documents_master_key(config.keys_dir))


_lock = threading.Lock()
_vaults: dict[tuple, Vault] = {}


def vault_from_config(config) -> Vault:
    """The vault of this configuration: S3 when BALCAO_DOCUMENTS_S3_ENDPOINT is set (boto3's own
    credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY...), else <var_dir>/documents. Contacts
    no server. One per configuration per process (the boto3 client is thread-safe and costly to
    build)."""
    cache_key = (config.documents_s3_endpoint, config.documents_s3_bucket, config.documents_s3_region,
                 str(config.var_dir), str(config.keys_dir), config.documents_key)
    with _lock:
        vault = _vaults.get(cache_key)
        if vault is None:
            backend: Backend
            if config.documents_s3_endpoint:
                backend = S3Backend(config.documents_s3_endpoint, config.documents_s3_bucket,
                                    config.documents_s3_region)
            else:
                backend = FilesystemBackend(Path(config.var_dir) / "documents")
            vault = _vaults[cache_key] = Vault(backend, master_key(config))
        return vault
