"""Input at the door: every request is checked against the constraints its proto declares.

The limits live in the contract itself, as protovalidate ``buf.validate``
annotations on the request messages (lengths, charsets, ranges, bounded
times), so the protos document every limit and no service re-implements them.
The server's handler chain (services.common.grpcserver.HandlerChain) checks
each request with the pinned ``protovalidate`` package before the servicer
runs: a violation becomes INVALID_ARGUMENT with reason ``INVALID_FIELD`` (or
the field's long-standing reason, such as ``INVALID_USER_ID``) and metadata ``field`` (the path of the first offending
field), ``rule`` (protovalidate's rule id, e.g. ``string.pattern``) and
``violations`` (how many were found), and nothing changes. Bytes that do not
parse as the method's message get ``MALFORMED_REQUEST``.

Domain checks that give a more specific reason (``INVALID_PAGE_TOKEN``,
``INVALID_TIME_RANGE``, ...) stay in the services; they run after this one for
whatever the contract cannot express.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import protovalidate
from google.protobuf.message import DecodeError, Message

from services.common.errors import DomainError, invalid

log = logging.getLogger(__name__)

INVALID_FIELD = "INVALID_FIELD"
MALFORMED_REQUEST = "MALFORMED_REQUEST"
# Fields whose refusals had a reason of their own before the constraints moved into the protos:
# clients switch on reasons, so a violation on these keeps that reason (the metadata still names the rule).
_STABLE_REASONS = {
    "user_id": "INVALID_USER_ID",
    "request_id": "INVALID_REQUEST_ID",
    "event_id": "INVALID_EVENT_ID",
    "hold_id": "INVALID_HOLD_ID",
    "transaction_id": "INVALID_TRANSACTION_ID",
    "page_size": "INVALID_PAGE_SIZE",
    "top_users_count": "INVALID_PAGE_SIZE",
    "page_token": "INVALID_PAGE_TOKEN",
    "code": "INVALID_CODE",
    "reason": "INVALID_REASON",
    "description": "INVALID_DESCRIPTION",
    "api_key": "BYOK_KEY_INVALID",
    "amount_nanos": "INVALID_AMOUNT",
    "credit_amount_nanos": "INVALID_AMOUNT",
    "credit_expiry_days": "INVALID_EXPIRY",
    "trial_days": "INVALID_TRIAL",
    "max_redemptions": "INVALID_LIMIT",
    "per_user_limit": "INVALID_LIMIT",
    "ttl_seconds": "INVALID_TTL",
    "hold_ttl_seconds": "INVALID_TTL",
    "input_tokens": "INVALID_QUANTITY",
    "output_tokens": "INVALID_QUANTITY",
    "max_output_tokens": "INVALID_QUANTITY",
    "quantity": "INVALID_QUANTITY",
    "markup_bps": "INVALID_RATE",
    "byok_markup_bps": "INVALID_RATE",
    "free_model_fee_per_1k_tokens_nanos": "INVALID_RATE",
    "price_nanos": "INVALID_RATE",
    "quantity_per_unit": "INVALID_RATE",
    "kind": "INVALID_KIND",
    "source": "INVALID_SOURCE",
    "service": "UNKNOWN_SERVICE",
    "charges": "TOO_MANY_CHARGES",
    "events": "INVALID_BATCH",
    "quotes": "TOO_MANY_QUOTES",
}

# One validator for the process: it caches the compiled rules of every message type it has seen.
_validator = protovalidate.Validator()


# Fields whose size limits had a reason of their own (their other rules answer INVALID_FIELD).
_SIZE_REASONS = {"metadata": "METADATA_TOO_LARGE"}


def _printable(text: str) -> str:
    """Caller-supplied text as it may appear in an error: ASCII, control and bidi characters escaped."""
    return "".join(ch if " " <= ch <= "~" else f"\\u{ord(ch):04x}" for ch in text)


def _path(violation: protovalidate.Violation) -> str:
    """``charges[2].request_id`` or ``metadata["note"]`` from a violation's field path."""
    parts: list[str] = []
    path = violation.proto.field
    for element in path.elements if path is not None else ():
        name = element.field_name
        subscript = element.subscript
        if subscript is not None:
            key = getattr(subscript, "value", None)
            if isinstance(key, str):
                # A map key is the caller's text: quoted, escaped and cut short.
                name = f'{name}["{_printable(key[:64])}"]'
            else:
                name = f"{name}[{key}]" if key is not None else f"{name}[]"
        parts.append(name)
    return ".".join(parts)


def violation_error(message: Message) -> DomainError | None:
    """The INVALID_FIELD error for ``message``, or None when it satisfies its declared constraints."""
    try:
        violations = _validator.collect_violations(message)
    except (protovalidate.CompilationError, protovalidate.EvaluationError):
        # A rule that does not compile is our bug, not the caller's: refuse loudly rather than let input through.
        log.exception("protovalidate rules failed", extra={"message_type": message.DESCRIPTOR.full_name})
        raise
    if not violations:
        return None
    first = violations[0].proto
    field = _path(violations[0]) or message.DESCRIPTOR.name
    text = _printable(first.message or "is invalid")
    leaf = field.rsplit(".", 1)[-1].split("[", 1)[0]
    reason = _STABLE_REASONS.get(leaf, INVALID_FIELD)
    if leaf in _SIZE_REASONS and not first.rule_id.endswith("pattern"):
        reason = _SIZE_REASONS[leaf]
    return invalid(
        reason,
        f"{field}: {text}",
        field=field,
        rule=first.rule_id,
        violations=str(len(violations)),
    )


class _Undecodable:
    """Stands in for a request whose bytes are not a valid message (the servicer never sees it)."""


def lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that hands corrupt input to check_request instead of failing the call with UNKNOWN.

    Envoy's transcoder can produce bytes that do not parse from odd JSON (an
    object where a map expects a string): refused with MALFORMED_REQUEST, not
    grpc's UNKNOWN (a 500 at the gateway).
    """
    if deserializer is None:
        return None
    parse = deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return _Undecodable()

    return deserialize


def check_request(request: Any) -> None:
    """Raises the refusal for a request that breaks its constraints or did not parse.

    The handler chain runs it after authentication, so an anonymous caller
    learns nothing about the shape of a method it may not call.
    """
    if isinstance(request, _Undecodable):
        raise invalid(MALFORMED_REQUEST, "the request is not a valid message of this method's type")
    if not isinstance(request, Message):
        return  # a handler with its own (non-protobuf) codec has no declared constraints
    error = violation_error(request)
    if error is not None:
        raise error
