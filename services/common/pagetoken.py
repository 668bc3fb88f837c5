"""Opaque, integrity-checked page tokens shared by every List RPC.

A page token is where the previous page stopped (an id, a timestamp, a code).
Callers must treat it as opaque: it is ``base64url(JSON list) "." base64url(tag)``
where the tag is a truncated HMAC-SHA256 over the payload and the RPC it was
issued for. A token that was edited, truncated, made up or issued by another
list RPC fails the tag check and is refused with INVALID_PAGE_TOKEN before any
of its content reaches SQL; the services then parse the positions strictly
(UUIDs, timezone-aware timestamps, ids of the usual charset).

The tag key is a fixed constant, not a secret: a token grants nothing (every
list still filters by the caller's identity), so forging one only lets a
caller choose where their own listing starts — which they can do anyway. The
tag exists to turn every malformed or tampered token into one clear 400.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from datetime import datetime

from services.common.errors import DomainError, invalid

# Long enough for any position we issue, short enough that parsing one costs nothing.
MAX_TOKEN_LENGTH = 512
_KEY = b"creditmeter.page-token.v1"
_TAG_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(purpose: str, payload: bytes) -> bytes:
    return hmac.new(_KEY, purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()[:_TAG_BYTES]


def bad_token() -> DomainError:
    return invalid("INVALID_PAGE_TOKEN", "page_token is not one this service issued", field="page_token")


def encode(purpose: str, *position: str) -> str:
    """A token for the page after ``position`` of the list RPC named ``purpose``."""
    payload = json.dumps(list(position), separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_tag(purpose, payload))}"


def decode(purpose: str, token: str, arity: int) -> tuple[str, ...] | None:
    """The position in ``token`` (None for the first page); INVALID_PAGE_TOKEN unless this RPC issued it."""
    if not token:
        return None
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise bad_token()
    body, _, tag = token.partition(".")
    try:
        payload, claimed = _unb64(body), _unb64(tag)
    except (binascii.Error, ValueError):
        raise bad_token() from None
    if not hmac.compare_digest(claimed, _tag(purpose, payload)):
        raise bad_token()
    try:
        values = json.loads(payload)
    except ValueError:
        raise bad_token() from None
    if not isinstance(values, list) or len(values) != arity or not all(isinstance(v, str) for v in values):
        raise bad_token()
    if any(ch < " " or ch == "\x7f" for v in values for ch in v):
        raise bad_token()
    return tuple(values)


def position_uuid(value: str) -> str:
    """A UUID position, canonical form."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise bad_token() from None


def position_time(value: str) -> datetime:
    """A timezone-aware timestamp position."""
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise bad_token() from None
    if stamp.tzinfo is None:
        raise bad_token()
    return stamp
