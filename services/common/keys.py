"""Keys: each service signs with its own Ed25519 key, and has an X25519 key that other
services seal secrets to (a link with a raw token sealed to the notifier, or to users for the
staff's "copy the invitation link") so that no raw token travels in the clear.

Keys live as PEM files in BALCAO_KEYS_DIR (`<service>.ed25519.pem`, `<service>.x25519.pem`,
and their `.pub.pem` public halves). `ensure_keys` creates missing ones.
"""
from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import SERVICES, secret_file

# The documents service's master key (base64 of 32 bytes): wraps every document's own key
# (services/documents/vault.py). Unless BALCAO_DOCUMENTS_KEY gives it, `balcao keys` makes it here, so
# that every documents process of a deployment (they share the keys volume) has the same one.
DOCUMENTS_MASTER_KEY_FILE = "documents-master-key"


def _random_key_file(path: Path) -> str:
    """The key kept at `path` (base64 of 32 random bytes), made once (mode 0600) when missing."""
    import secrets
    return secret_file(path, lambda: base64.b64encode(secrets.token_bytes(32)).decode("ascii"))


def documents_master_key(keys_dir: Path) -> str:
    """The master key kept in keys_dir (base64), made once (mode 0600) when missing."""
    return _random_key_file(Path(keys_dir) / DOCUMENTS_MASTER_KEY_FILE)


# The users service's key encrypting CPF and phone numbers at rest (services/users/pii.py), unless
# BALCAO_PII_KEY gives it: made by `balcao keys` too, so that a deployment whose processes mount the
# keys read-only (docker-compose, the Kubernetes Secret) has it before the users service starts.
PII_KEY_FILE = "pii.key"


def pii_key(keys_dir: Path) -> str:
    """The PII key kept in keys_dir (base64 of 32 bytes), made once (mode 0600) when missing."""
    return _random_key_file(Path(keys_dir) / PII_KEY_FILE)


_PEM = serialization.Encoding.PEM


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def ensure_keys(keys_dir: Path) -> None:
    """Create every missing key pair (the embedded mode and the process runner call this)."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    for svc in SERVICES:
        priv = keys_dir / f"{svc}.ed25519.pem"
        if not priv.exists():
            key = Ed25519PrivateKey.generate()
            _write(priv, key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()), 0o600)
            _write(keys_dir / f"{svc}.ed25519.pub.pem",
                   key.public_key().public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
        seal = keys_dir / f"{svc}.x25519.pem"
        if not seal.exists():
            seal_key = X25519PrivateKey.generate()
            _write(seal, seal_key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()), 0o600)
            _write(keys_dir / f"{svc}.x25519.pub.pem",
                   seal_key.public_key().public_bytes(_PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    documents_master_key(keys_dir)
    pii_key(keys_dir)


class KeyRing:
    def __init__(self, keys_dir: Path):
        self.keys_dir = Path(keys_dir)
        self._loaded: dict[tuple[str, bool], object] = {}

    def _load(self, name: str, private: bool):
        """A key file, read once per KeyRing (a per-instance cache: a cache on the method would keep
        every KeyRing ever made alive)."""
        key = (name, private)
        if key not in self._loaded:
            data = (self.keys_dir / name).read_bytes()
            self._loaded[key] = (serialization.load_pem_private_key(data, None) if private
                                 else serialization.load_pem_public_key(data))
        return self._loaded[key]

    # ---- signed tokens (sessions, invitation tickets)
    def sign(self, issuer: str, claims: dict, *, audience: str, ttl: timedelta) -> str:
        now = datetime.now(UTC)
        body = {**claims, "iss": issuer, "aud": audience, "iat": now, "exp": now + ttl}
        key: Ed25519PrivateKey = self._load(f"{issuer}.ed25519.pem", True)
        return jwt.encode(body, key, algorithm="EdDSA")

    def verify(self, issuer: str, token: str, *, audience: str, verify_exp: bool = True) -> dict | None:
        """Claims of a valid token from `issuer` for `audience`, or None (bad, expired, forged).

        `verify_exp=False` accepts an authentic token past its `exp` (session renewal decides by
        the session's own record, not by the short-lived token)."""
        if not token:
            return None
        key: Ed25519PublicKey = self._load(f"{issuer}.ed25519.pub.pem", False)
        try:
            return jwt.decode(token, key, algorithms=["EdDSA"], audience=audience, issuer=issuer,
                              options={"require": ["exp", "iat", "iss", "aud"], "verify_exp": verify_exp})
        except jwt.PyJWTError:
            return None

    # ---- sealing secrets to one service (the notifier by default)
    def seal(self, data: dict, *, recipient: str = "notifier") -> str:
        recipient_key: X25519PublicKey = self._load(f"{recipient}.x25519.pub.pem", False)
        eph = X25519PrivateKey.generate()
        eph_pub = eph.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key = _derive(eph.exchange(recipient_key), eph_pub)
        nonce = os.urandom(12)
        ct = ChaCha20Poly1305(key).encrypt(nonce, json.dumps(data).encode(), b"balcao-seal-v1")
        return base64.urlsafe_b64encode(eph_pub + nonce + ct).decode()

    def unseal(self, sealed: str, *, recipient: str = "notifier") -> dict:
        raw = base64.urlsafe_b64decode(sealed.encode())
        eph_pub, nonce, ct = raw[:32], raw[32:44], raw[44:]
        priv: X25519PrivateKey = self._load(f"{recipient}.x25519.pem", True)
        key = _derive(priv.exchange(X25519PublicKey.from_public_bytes(eph_pub)), eph_pub)
        return json.loads(ChaCha20Poly1305(key).decrypt(nonce, ct, b"balcao-seal-v1"))


def _derive(shared: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"balcao-seal-v1").derive(shared)
