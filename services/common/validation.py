"""Input at the door: every request is checked against the constraints its proto declares.

The limits live in the contract itself, as protovalidate ``buf.validate``
annotations on the request messages (lengths, charsets, ranges, bounded
times), so the protos document every limit and no service re-implements them.
One server interceptor checks each request with the pinned ``protovalidate``
package before the servicer runs: a violation becomes INVALID_ARGUMENT with
reason ``INVALID_FIELD`` (or the field's long-standing reason, such as
``INVALID_USER_ID``) and metadata ``field`` (the path of the first offending
field), ``rule`` (protovalidate's rule id, e.g. ``string.pattern``) and
``violations`` (how many were found), and nothing changes. Bytes that do not
parse as the method's message get ``MALFORMED_REQUEST``.

Domain checks that give a more specific reason (``INVALID_PAGE_TOKEN``,
``INVALID_TIME_RANGE``, ...) stay in the services; they run after this one for
whatever the contract cannot express.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import protovalidate
from google.protobuf.message import DecodeError, Message

from services.common.errors import DomainError, invalid
from services.common.grpcserver import HEALTH_PREFIX, REFLECTION_PREFIX

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


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """A deserializer that hands corrupt input to the interceptor instead of failing the call with UNKNOWN."""
    if deserializer is None:
        return None
    parse = deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return _Undecodable()

    return deserialize


class ValidationInterceptor(grpc.aio.ServerInterceptor):
    """Refuses a request that breaks its message's ``buf.validate`` constraints, before the servicer runs.

    Placed after authentication, so an anonymous caller learns nothing about
    the shape of a method it may not call. A request whose bytes do not parse
    at all (which Envoy's transcoder can produce from odd JSON, e.g. an object
    where a map expects a string) is refused here too, with MALFORMED_REQUEST,
    instead of grpc's UNKNOWN (a 500 at the gateway).
    """

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = details.method
        if method.startswith(HEALTH_PREFIX) or method.startswith(REFLECTION_PREFIX) or handler is None:
            return handler
        codec = {
            "request_deserializer": _lenient(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            behaviour = handler.unary_unary

            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                _check(request)
                return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(run, **codec)
        if handler.unary_stream is not None:
            streaming = handler.unary_stream

            async def run_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                _check(request)
                result = streaming(request, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:  # a handler that writes with context.write() and returns nothing
                    await result

            return grpc.unary_stream_rpc_method_handler(run_stream, **codec)
        # Client-streaming methods (none today) would validate each message as it arrives.
        return handler


def _check(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise invalid(MALFORMED_REQUEST, "the request is not a valid message of this method's type")
    if not isinstance(request, Message):
        return  # a handler with its own (non-protobuf) codec has no declared constraints
    error = violation_error(request)
    if error is not None:
        raise error
