"""Keys and tags that authenticate (and optionally encrypt) channel traffic.

Every key is derived from the cluster's shared ``secret`` with HMAC-SHA256 and a
label of its own, so a heartbeat tag can never be passed off as a frame tag. A
connection gets fresh keys, one per direction, from the two nonces of its
handshake: frames recorded on one connection are refused on any other.
Without a secret (``allow_insecure``) tags are empty and nothing is checked.

Rotation: ``previous`` secrets are accepted, never used to sign. A heartbeat
verifies under any of them; an accepted connection keys itself (and its
encryption) from whichever handshake key the initiator's HELLO verifies under,
so a node that signs with the new secret and one that still signs with the old
one talk as long as each knows the other's (docs/security.md, "Rotating the secret").
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

TAG_SIZE: Final = 32  # HMAC-SHA256, not truncated

_HEARTBEAT: Final = b"clustersession/v1/heartbeat"
_HANDSHAKE: Final = b"clustersession/v1/handshake"
_CONNECTION: Final = b"clustersession/v1/connection/"
_ENCRYPTION: Final = b"clustersession/v1/encryption/"


def _derive(key: bytes, label: bytes) -> bytes:
    return hmac.new(key, label, hashlib.sha256).digest()


class Keys:
    """The keys of one cluster secret; ``Keys(None)`` authenticates nothing."""

    def __init__(
        self, secret: str | None, *, previous: tuple[str, ...] = (), encrypt: bool = False
    ) -> None:
        roots = [s.encode("utf-8") for s in (secret, *previous) if s] if secret else []
        self.enabled = bool(roots)
        self.encrypt = encrypt and self.enabled
        # The current secret's keys sign; every secret's keys verify (current first).
        self.heartbeats = tuple(_derive(root, _HEARTBEAT) for root in roots)
        self.handshakes = tuple(_derive(root, _HANDSHAKE) for root in roots)
        self.heartbeat = self.heartbeats[0] if roots else b""
        self.handshake = self.handshakes[0] if roots else b""

    @property
    def tag_size(self) -> int:
        """Bytes of tag after each heartbeat and frame."""
        return TAG_SIZE if self.enabled else 0

    def tag(self, key: bytes, *parts: bytes) -> bytes:
        """HMAC-SHA256 of the concatenated parts (empty when disabled)."""
        if not self.enabled:
            return b""
        mac = hmac.new(key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(part)
        return mac.digest()

    def verify(self, key: bytes, tag: bytes, *parts: bytes) -> bool:
        """Constant-time check of a tag made by :meth:`tag`."""
        if not self.enabled:
            return True
        return hmac.compare_digest(tag, self.tag(key, *parts))

    def verifying_key(self, keys: tuple[bytes, ...], tag: bytes, *parts: bytes) -> bytes | None:
        """The first of ``keys`` (current, then previous) under which ``tag`` verifies."""
        if not self.enabled:
            return b""
        for key in keys:
            if self.verify(key, tag, *parts):
                return key
        return None

    def connection_keys(
        self, handshake: bytes, initiator_nonce: bytes, acceptor_nonce: bytes
    ) -> tuple[bytes, bytes]:
        """``(initiator→acceptor, acceptor→initiator)`` keys of one connection.

        ``handshake`` is the handshake key the HELLO was tagged with (the
        initiator's current secret's, which the acceptor may know as a previous one).
        """
        if not self.enabled:
            return b"", b""
        nonces = initiator_nonce + acceptor_nonce
        return (
            _derive(handshake, _CONNECTION + b"i2a" + nonces),
            _derive(handshake, _CONNECTION + b"a2i" + nonces),
        )

    def cipher(self, direction_key: bytes) -> Cipher | None:
        """The AES-GCM cipher of one direction, when encryption is on."""
        if not self.encrypt:
            return None
        return Cipher(_derive(direction_key, _ENCRYPTION))


class Cipher:
    """AES-256-GCM with a counter nonce; needs the optional ``cryptography`` package."""

    def __init__(self, key: bytes) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "encryption needs the 'cryptography' package: "
                "pip install 'clustersession[encryption]'"
            ) from exc
        self._aead = AESGCM(key)

    def encrypt(self, seq: int, data: bytes, aad: bytes) -> bytes:
        """Encrypt one frame body; ``seq`` never repeats on a connection direction."""
        return bytes(self._aead.encrypt(seq.to_bytes(12, "big"), data, aad))

    def decrypt(self, seq: int, data: bytes, aad: bytes) -> bytes:
        """Decrypt one frame body; raises if it was tampered with."""
        return bytes(self._aead.decrypt(seq.to_bytes(12, "big"), data, aad))
