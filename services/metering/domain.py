"""Metering domain: event validation, fingerprints, quota windows, report ranges. Pure Python."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from services.common.errors import DomainError, already_exists, invalid
from services.common.idempotency import ID_PATTERN

DOMAIN = "metering.creditmeter.dev"
SERVICES = ("LLM", "TTS", "STT", "EMBEDDING", "SEARCH", "AGENT")
MAX_UNITS = 10_000_000_000
MAX_BATCH = 10_000
#: The most one event may cost ($100,000). The door refuses usage priced above it
#: (COST_OUT_OF_RANGE); usage priced later (the book was away at the door) is capped
#: to it, so every recorded event stays chargeable without any bigint overflow.
MAX_EVENT_COST_NANOS = 100_000 * 1_000_000_000
MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256
FUTURE_TOLERANCE = timedelta(minutes=5)
#: A JSON string literal exactly as json.dumps writes it (ASCII, escaped).
_quote = json.encoder.encode_basestring_ascii


@dataclass(frozen=True)
class Event:
    event_id: str
    user_id: str
    service: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    quantity: int
    byok: bool
    hold_id: str
    occurred_at: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    #: Whether the caller said when it happened (else it is the time of the first report).
    occurred_at_given: bool = True

    def fingerprint(self) -> str:
        """What makes an event the same event: everything the caller reported (a retry omitting the time
        again reports the same event).

        The SHA-256 of the event's canonical JSON: its fields but ``occurred_at_given`` (and
        ``occurred_at`` when the caller did not give it) as ``json.dumps(..., sort_keys=True,
        separators=(",", ":"))`` writes them. Stored fingerprints are compared with new ones, so the
        text must never change; it is written out here field by field (half the cost of building the
        dict and running the encoder, for every event of every batch), and a property test holds it
        to the encoder's output.
        """
        meta = ",".join(f"{_quote(k)}:{_quote(v)}" for k, v in sorted(self.metadata.items()))
        when = ""
        if self.occurred_at_given:
            when = f'"occurred_at":{_quote(self.occurred_at.astimezone(UTC).isoformat())},'
        canonical = (
            f'{{"byok":{"true" if self.byok else "false"},"event_id":{_quote(self.event_id)},'
            f'"hold_id":{_quote(self.hold_id)},"input_tokens":{int(self.input_tokens)},"metadata":{{{meta}}},'
            f'"model":{_quote(self.model)},{when}"output_tokens":{int(self.output_tokens)},'
            f'"provider":{_quote(self.provider)},"quantity":{int(self.quantity)},"service":{_quote(self.service)},'
            f'"user_id":{_quote(self.user_id)}}}'
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _check_id(value: str, field_name: str, reason: str) -> str:
    if not ID_PATTERN.match(value):
        raise invalid(
            reason, f"{field_name} must be 1-128 characters of letters, digits and ._:@|+=/-", field=field_name
        )
    return value


def _check_units(value: int, field_name: str) -> int:
    if value < 0 or value > MAX_UNITS:
        raise invalid("INVALID_QUANTITY", f"{field_name} must be from 0 to {MAX_UNITS}", field=field_name)
    return value


def validate_event(
    *,
    event_id: str,
    user_id: str,
    service: str | None,
    model: str,
    provider: str,
    input_tokens: int,
    output_tokens: int,
    quantity: int,
    byok: bool,
    hold_id: str,
    occurred_at: datetime | None,
    metadata: dict[str, str],
    now: datetime,
) -> Event:
    _check_id(event_id, "event_id", "INVALID_EVENT_ID")
    _check_id(user_id, "user_id", "INVALID_USER_ID")
    if service not in SERVICES:
        raise invalid("UNKNOWN_SERVICE", f"service must be one of {', '.join(SERVICES)}", field="service")
    if service == "LLM" and not model:
        raise invalid("MISSING_MODEL", "model is required for LLM usage", field="model")
    if len(model) > 256 or len(provider) > 128:
        raise invalid("INVALID_ARGUMENT", "model or provider is too long")
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens), ("quantity", quantity)):
        _check_units(value, name)
    moment = occurred_at or now
    if moment > now + FUTURE_TOLERANCE:
        raise invalid("OCCURRED_IN_FUTURE", "occurred_at is in the future", field="occurred_at")
    if len(metadata) > MAX_METADATA_ENTRIES or any(
        len(k) > MAX_METADATA_KEY or len(v) > MAX_METADATA_VALUE for k, v in metadata.items()
    ):
        raise invalid(
            "METADATA_TOO_LARGE",
            f"metadata allows {MAX_METADATA_ENTRIES} entries, keys of {MAX_METADATA_KEY} and values of "
            f"{MAX_METADATA_VALUE} characters",
            field="metadata",
        )
    return Event(
        event_id,
        user_id,
        service,
        model,
        provider,
        input_tokens,
        output_tokens,
        quantity,
        byok,
        hold_id,
        moment,
        dict(metadata),
        occurred_at is not None,
    )


def event_id_reused(event_id: str) -> DomainError:
    return already_exists(
        "EVENT_ID_REUSED", "this event_id was already tracked with different contents", event_id=event_id
    )


def quota_window(api_call_period: str, period_start: datetime, now: datetime) -> datetime:
    """Calls are counted per UTC day (daily quotas) or per credits billing period."""
    if api_call_period == "day":
        return datetime(now.year, now.month, now.day, tzinfo=UTC)
    return period_start


def day_range(start: datetime | None, end: datetime | None, today: date) -> tuple[date, date]:
    """Whole UTC days [first, last) covering [start, end)."""
    first = start.astimezone(UTC).date() if start else date(1970, 1, 1)
    if end is None:
        last = today + timedelta(days=1)
    else:
        utc_end = end.astimezone(UTC)
        last = utc_end.date() + (timedelta(days=1) if utc_end.time() != datetime.min.time() else timedelta(0))
    if last <= first:
        raise invalid("INVALID_TIME_RANGE", "end_time must be after start_time", field="end_time")
    return first, last
