"""Personal data (LGPD): CPF and phone encrypted at rest, searchable through a keyed hash, and
masked for whoever may not edit them.

The key is `Config.pii_key` (BALCAO_PII_KEY, base64 of 32 bytes); when unset a key is generated
once and kept in `<keys_dir>/pii.key` (`balcao keys` makes it; services.common.keys.pii_key). Two subkeys are derived from it
with HKDF: one for AES-GCM (a random 96-bit nonce per value, the column name as associated
data, stored as base64(nonce || ciphertext)), one for HMAC-SHA256 (the search hash).

The process's cipher is chosen by `configure(config)` (the users app, its consumers and periodic
jobs call it); without it the environment's configuration is used (`load_config()`).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from services.common.keys import pii_key

PREFIX = "v1:"  # format marker of stored values (lets a later rotation tell versions apart)


class PiiCipher:
    def __init__(self, master: bytes):
        if len(master) != 32:
            raise ValueError("the PII key must be 32 bytes (base64 in BALCAO_PII_KEY)")
        self._aead = AESGCM(self._derive(master, b"balcao-pii-encryption"))
        self._search_key = self._derive(master, b"balcao-pii-search")

    @staticmethod
    def _derive(master: bytes, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    def encrypt(self, value: str, *, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode("utf-8"), purpose.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, stored: str, *, purpose: str) -> str:
        if not stored.startswith(PREFIX):
            raise ValueError("not an encrypted PII value")
        raw = base64.b64decode(stored[len(PREFIX):])
        return self._aead.decrypt(raw[:12], raw[12:], purpose.encode()).decode("utf-8")

    def search_hash(self, value: str, *, purpose: str) -> str:
        return hmac.new(self._search_key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


_lock = threading.Lock()
_ciphers: dict[str, PiiCipher] = {}
_current: PiiCipher | None = None


def _master_key(config) -> bytes:
    if config.pii_key:
        try:
            return base64.b64decode(config.pii_key, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("BALCAO_PII_KEY must be base64 of 32 bytes") from None
    return base64.b64decode(pii_key(Path(config.keys_dir)))


def cipher_for(config) -> PiiCipher:
    key = f"{config.pii_key or ''}|{config.keys_dir}"
    with _lock:
        if key not in _ciphers:
            _ciphers[key] = PiiCipher(_master_key(config))
        return _ciphers[key]


def configure(config) -> PiiCipher:
    """Use this configuration's key in this process (idempotent)."""
    global _current
    _current = cipher_for(config)
    return _current


def cipher() -> PiiCipher:
    if _current is None:
        from services.common.config import load_config
        configure(load_config())
    assert _current is not None
    return _current


def cpf_hash(digits: str | None) -> str | None:
    """The keyed search hash of a CPF's 11 digits (None for no CPF)."""
    return cipher().search_hash(digits, purpose="cpf") if digits else None


class EncryptedText(TypeDecorator):
    """A str column stored encrypted (AES-GCM); reads back the clear value."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.purpose = purpose

    def process_bind_param(self, value, dialect):
        if value is None or value == "":
            return None if value is None else ""
        return cipher().encrypt(str(value), purpose=self.purpose)

    def process_result_value(self, value, dialect):
        if not value:
            return value
        return cipher().decrypt(value, purpose=self.purpose)


# --------------------------------------------------------------------------- masking


def mask_cpf(digits: str | None) -> str:
    """`***.456.789-**`: the middle six digits, as the Receita's own masked documents show."""
    if not digits:
        return ""
    return f"***.{digits[3:6]}.{digits[6:9]}-**"


def mask_phone(e164: str | None) -> str:
    """`(**) *****-4321`: only the last four digits."""
    if not e164:
        return ""
    digits = "".join(ch for ch in e164 if ch.isdigit())
    middle = "*****" if len(digits) >= 13 else "****"  # mobile (9 digits) or landline (8)
    return f"(**) {middle}-{digits[-4:]}"


def mask_cpf_tail(digits: str | None) -> str:
    """`***.***.*89-09`: only the last four digits (what an event about a person-company carries)."""
    if not digits:
        return ""
    return f"***.***.*{digits[7:9]}-{digits[9:11]}"
