"""The documents' vault against a real S3 server (SeaweedFS) and the real filesystem: what is
stored comes back whole, the store never holds a plaintext, any alteration is caught, a refused
file leaves nothing, a store that goes down is reported as such, and memory stays flat."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import re
import stat

import pytest

from services.documents.storage import FilesystemBackend
from services.documents.vault import (
    CHUNK_SIZE,
    HEADER_SIZE,
    SEALED_CHUNK_SIZE,
    IntegrityFailure,
    StorageUnavailable,
    TooLarge,
    Vault,
    master_key,
    vault_from_config,
)
from testsupport import make_test_config
from testsupport.seaweed import free_ports

MiB = 1024 * 1024
OBJECT_KEY = re.compile(r"d/[0-9a-f]{2}/[0-9a-f]{32}")


def s3_config(tmp_path, server, **overrides):
    return make_test_config(tmp_path, documents_s3_endpoint=server.endpoint, documents_s3_bucket=server.bucket,
                            **overrides)


@pytest.fixture(params=["filesystem", "s3"])
def vault(request, tmp_path) -> Vault:
    if request.param == "s3":
        config = s3_config(tmp_path, request.getfixturevalue("s3_env"))
    else:
        config = make_test_config(tmp_path)
    made = vault_from_config(config)
    made.ensure_bucket()
    return made


@pytest.fixture
def s3_vault(tmp_path, s3_env) -> Vault:
    made = vault_from_config(s3_config(tmp_path, s3_env))
    made.ensure_bucket()
    return made


class RandomStream(io.RawIOBase):
    """`size` random bytes made as they are read (never all in memory), hashed on the way;
    `on_read(bytes_read_so_far)` is called after each read."""

    def __init__(self, size: int, on_read=None):
        self.left = size
        self.read_so_far = 0
        self.digest = hashlib.sha256()
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        data = os.urandom(n)
        buffer[:n] = data
        self.digest.update(data)
        self.left -= n
        self.read_so_far += n
        if self.on_read is not None:
            self.on_read(self.read_so_far)
        return n


def random_stream(size: int, on_read=None) -> tuple[io.BufferedReader, RandomStream]:
    raw = RandomStream(size, on_read)
    return io.BufferedReader(raw, buffer_size=CHUNK_SIZE), raw


def read_all(vault: Vault, stored) -> bytes:
    return b"".join(vault.open(stored.object_key, stored.wrapped_key, stored.sha256))


def raw_object(vault: Vault, key: str) -> bytes:
    return b"".join(vault.backend.get(key))


def replace_object(vault: Vault, key: str, data: bytes) -> None:
    vault.backend.put(key, [data])


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("data", [
    pytest.param(b"Guia DARF 03/2025 - R$ 1.234,56", id="a-few-bytes"),
    pytest.param(b"", id="empty"),
    pytest.param(os.urandom(3 * MiB), id="3MiB-ends-on-a-chunk-boundary"),
    pytest.param(os.urandom(11 * MiB + 7), id="11MiB-several-s3-parts"),
])
def test_what_is_stored_comes_back_whole(vault, data):
    stored = vault.store(io.BytesIO(data))

    assert OBJECT_KEY.fullmatch(stored.object_key)
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert read_all(vault, stored) == data
    assert [key for key, _ in vault.iter_objects()] == [stored.object_key]


def test_a_stream_read_in_small_pieces_is_stored_whole(vault):
    data = os.urandom(CHUNK_SIZE * 2 + 100)
    trickle = io.BufferedReader(io.BytesIO(data), buffer_size=1000)  # reads return at most 1000 bytes
    stored = vault.store(trickle)
    assert read_all(vault, stored) == data


def test_every_document_has_its_own_key_and_object(vault):
    first, second = vault.store(io.BytesIO(b"mesmo conteudo")), vault.store(io.BytesIO(b"mesmo conteudo"))
    assert first.object_key != second.object_key
    assert first.wrapped_key != second.wrapped_key
    assert raw_object(vault, first.object_key) != raw_object(vault, second.object_key)
    assert len(first.wrapped_key) == 45 and first.wrapped_key[0] == 1  # format 1: key id + AES-KW


# --------------------------------------------------------------------------- the store sees no plaintext


def test_the_store_holds_neither_plaintext_nor_names(vault, s3_env):
    data = b"Holerite de Maria da Silva, CPF 123.456.789-09. " * 4000
    stored = vault.store(io.BytesIO(data))
    raws = list(vault.raw_objects())

    assert len(raws) == 1 and len(raws[0]) > len(data)
    for start in (0, len(data) // 2, len(data) - 32):
        assert data[start:start + 32] not in raws[0]
    assert b"Maria" not in raws[0] and b"Holerite" not in raws[0]
    if vault.backend.__class__.__name__ == "S3Backend":
        head = s3_env.client().head_object(Bucket=vault.backend.bucket, Key=stored.object_key)
        assert head["Metadata"] == {}


# --------------------------------------------------------------------------- tampering


def _flip_a_byte(raw: bytes) -> bytes:
    i = HEADER_SIZE + SEALED_CHUNK_SIZE + 1000  # inside the second chunk
    return raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:]


def _drop_the_last_chunk(raw: bytes) -> bytes:
    return raw[:HEADER_SIZE + 3 * SEALED_CHUNK_SIZE]  # ends where a chunk ends: a cut, not a garbled tail


def _swap_two_chunks(raw: bytes) -> bytes:
    first = raw[HEADER_SIZE:HEADER_SIZE + SEALED_CHUNK_SIZE]
    second = raw[HEADER_SIZE + SEALED_CHUNK_SIZE:HEADER_SIZE + 2 * SEALED_CHUNK_SIZE]
    return raw[:HEADER_SIZE] + second + first + raw[HEADER_SIZE + 2 * SEALED_CHUNK_SIZE:]


def _alter_the_header(raw: bytes) -> bytes:
    return raw[:5] + bytes([raw[5] ^ 0x80]) + raw[6:]


@pytest.mark.parametrize("tamper", [_flip_a_byte, _drop_the_last_chunk, _swap_two_chunks, _alter_the_header])
def test_an_altered_object_is_caught(vault, tamper):
    data = os.urandom(3 * CHUNK_SIZE + 500)  # four chunks, the last one short
    stored = vault.store(io.BytesIO(data))
    replace_object(vault, stored.object_key, tamper(raw_object(vault, stored.object_key)))

    received = bytearray()
    with pytest.raises(IntegrityFailure):
        for piece in vault.open(stored.object_key, stored.wrapped_key, stored.sha256):
            received += piece
    assert len(received) < len(data)


def test_an_object_cut_at_a_chunk_boundary_is_caught_even_with_the_hash_of_what_remains(vault):
    data = os.urandom(3 * CHUNK_SIZE + 500)
    stored = vault.store(io.BytesIO(data))
    replace_object(vault, stored.object_key, _drop_the_last_chunk(raw_object(vault, stored.object_key)))
    remains = hashlib.sha256(data[:3 * CHUNK_SIZE]).hexdigest()
    with pytest.raises(IntegrityFailure, match="chunk 2"):  # sealed as "not the last": the cut shows
        b"".join(vault.open(stored.object_key, stored.wrapped_key, remains))


def test_a_hash_other_than_the_stored_ones_is_caught_before_the_file_is_whole(vault):
    data = os.urandom(2 * CHUNK_SIZE + 10)
    stored = vault.store(io.BytesIO(data))
    other = hashlib.sha256(b"outro arquivo").hexdigest()

    received = bytearray()
    with pytest.raises(IntegrityFailure):
        for piece in vault.open(stored.object_key, stored.wrapped_key, other):
            received += piece
    assert bytes(received) == data[:2 * CHUNK_SIZE]  # the last chunk is withheld


def test_another_documents_key_does_not_open_an_object(vault):
    first, second = vault.store(io.BytesIO(b"primeiro")), vault.store(io.BytesIO(b"segundo"))
    with pytest.raises(IntegrityFailure):
        b"".join(vault.open(first.object_key, second.wrapped_key, first.sha256))


def test_a_missing_object_is_an_integrity_failure(vault):
    stored = vault.store(io.BytesIO(b"apagado"))
    vault.delete(stored.object_key)
    vault.delete(stored.object_key)  # idempotent
    with pytest.raises(IntegrityFailure):
        read_all(vault, stored)
    assert list(vault.iter_objects()) == []


# --------------------------------------------------------------------------- too large


@pytest.mark.parametrize("limit", [pytest.param(1000, id="small"), pytest.param(6 * MiB, id="after-an-s3-part")])
def test_a_stream_over_the_limit_leaves_nothing(vault, limit):
    stream, raw = random_stream(limit + CHUNK_SIZE)
    with pytest.raises(TooLarge):
        vault.store(stream, max_bytes=limit)
    assert raw.read_so_far <= limit + CHUNK_SIZE  # stopped at the first chunk over the limit
    assert list(vault.iter_objects()) == []


def test_a_stream_of_exactly_the_limit_is_stored(vault):
    data = os.urandom(1000)
    stored = vault.store(io.BytesIO(data), max_bytes=1000)
    assert read_all(vault, stored) == data


# --------------------------------------------------------------------------- the store going down


def test_a_stopped_store_is_reported_unavailable_and_works_again_once_back(s3_vault, s3_env):
    before = s3_vault.store(io.BytesIO(b"antes da queda"))
    s3_env.stop()

    with pytest.raises(StorageUnavailable):
        s3_vault.check()
    with pytest.raises(StorageUnavailable):
        s3_vault.store(io.BytesIO(b"durante a queda"))
    with pytest.raises(StorageUnavailable):
        s3_vault.open(before.object_key, before.wrapped_key, before.sha256)
    with pytest.raises(StorageUnavailable):
        list(s3_vault.iter_objects())

    s3_env.start()
    s3_vault.check()
    after = s3_vault.store(io.BytesIO(b"depois da volta"))
    assert read_all(s3_vault, after) == b"depois da volta"
    assert read_all(s3_vault, before) == b"antes da queda"


def test_an_upload_cut_by_the_store_going_down_is_swept_once_it_is_back(s3_vault, s3_env):
    def stop_after_the_first_part(read_so_far):
        if read_so_far >= 7 * MiB and s3_env.running:
            s3_env.stop()

    stream, _ = random_stream(12 * MiB, on_read=stop_after_the_first_part)
    with pytest.raises(StorageUnavailable):
        s3_vault.store(stream)

    s3_env.start()
    leftovers = {key for key, _ in s3_vault.iter_objects()}  # the upload that could not be aborted
    assert len(leftovers) == 1
    for key in leftovers:
        s3_vault.delete(key)
    assert list(s3_vault.iter_objects()) == []


def test_the_s3_vault_is_made_without_contacting_the_store(tmp_path, s3_env):
    (port,) = free_ports(1)  # nothing listens there
    config = make_test_config(tmp_path, documents_s3_endpoint=f"http://127.0.0.1:{port}")
    made = vault_from_config(config)
    with pytest.raises(StorageUnavailable):
        made.check()


# --------------------------------------------------------------------------- the master key


def test_the_master_key_file_is_made_once_private_and_kept(tmp_path):
    config = make_test_config(tmp_path)
    stored = vault_from_config(config).store(io.BytesIO(b"contrato social"))

    key_file = config.keys_dir / "documents-master-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = Vault(FilesystemBackend(tmp_path / "documents"), master_key(config))  # another process, same files
    assert read_all(again, stored) == b"contrato social"


def test_the_configured_master_key_is_used_and_an_old_one_still_opens_after_rotation(tmp_path):
    old, new = os.urandom(32), os.urandom(32)
    config = make_test_config(tmp_path, documents_key=base64.b64encode(old).decode())
    stored = vault_from_config(config).store(io.BytesIO(b"balancete"))

    backend = FilesystemBackend(tmp_path / "documents")
    assert read_all(Vault(backend, old), stored) == b"balancete"  # the configured key, not the keys file's
    with pytest.raises(IntegrityFailure):
        read_all(Vault(backend, new), stored)
    rotated = Vault(backend, new, previous_masters=[old])
    assert read_all(rotated, stored) == b"balancete"
    assert rotated.store(io.BytesIO(b"x")).wrapped_key[1:5] != stored.wrapped_key[1:5]  # a new key id


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_master_key_is_refused(tmp_path, value):
    config = dataclasses.replace(make_test_config(tmp_path), documents_key=value)
    with pytest.raises(ValueError, match="BALCAO_DOCUMENTS_KEY"):
        vault_from_config(config)


# --------------------------------------------------------------------------- memory


def test_storing_and_reading_50_mb_keeps_memory_flat(s3_vault):
    warm_up = s3_vault.store(random_stream(12 * MiB)[0])  # the client, its parsers, one part's buffers
    for _ in s3_vault.open(warm_up.object_key, warm_up.wrapped_key, warm_up.sha256):
        pass
    before = rss_bytes()

    stream, raw = random_stream(50 * MiB)
    stored = s3_vault.store(stream)
    after_store = rss_bytes()
    digest = hashlib.sha256()
    for piece in s3_vault.open(stored.object_key, stored.wrapped_key, stored.sha256):
        digest.update(piece)
    after_read = rss_bytes()

    assert stored.size == 50 * MiB and digest.hexdigest() == raw.digest.hexdigest() == stored.sha256
    assert after_store - before < 15 * MiB, f"storing grew RSS by {(after_store - before) / MiB:.1f} MiB"
    assert after_read - before < 15 * MiB, f"reading grew RSS by {(after_read - before) / MiB:.1f} MiB"
