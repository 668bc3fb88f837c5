"""Request ids and the fingerprints stored with them (AIP-155), the same in every service."""

from __future__ import annotations

import hashlib
import json
import re

from services.common.errors import invalid

#: The shape of every caller-chosen identifier: request ids, user ids, event ids.
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@|+=/-]{1,128}\Z")
ID_RULE = "1-128 characters of letters, digits and ._:@|+=/-"


def validate_request_id(request_id: str) -> str:
    if not request_id:
        raise invalid("MISSING_REQUEST_ID", "request_id is required for every change", field="request_id")
    if not ID_PATTERN.match(request_id):
        raise invalid("INVALID_REQUEST_ID", f"request_id must be {ID_RULE}", field="request_id")
    return request_id


def fingerprint(operation: str, **fields: object) -> str:
    """A stable digest of a request's meaning, stored with its idempotency key.

    A retry with the same key must carry the same fingerprint; anything else is
    a different request reusing the key.
    """
    canonical = json.dumps({"op": operation, **fields}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
