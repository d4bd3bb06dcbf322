"""Kraken's request signing: API-Key and API-Sign headers over the raw body.

    signature = base64(HMAC-SHA512(base64decode(secret),
                                   uri_path + SHA256(nonce + raw body)))

Verified over the bytes the client sent, never a re-encoding of the parsed parameters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac


def signature(uri_path: str, nonce: str, body: bytes, secret_b64: str) -> str:
    inner = hashlib.sha256(nonce.encode() + body).digest()
    mac = hmac.new(base64.b64decode(secret_b64), uri_path.encode() + inner, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def signature_ok(uri_path: str, nonce: str, body: bytes, secret_b64: str, given: str) -> bool:
    try:
        expected = signature(uri_path, nonce, body, secret_b64)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(expected.encode(), given.strip().encode())
