"""An event's fingerprint is compared with fingerprints stored by earlier releases: its text must not drift.

The reference below is the original definition (the canonical JSON of the event's reported fields, as
``json.dumps`` sorts and separates them); the hand-written form in services.metering.domain must give the
same digest for every event the door accepts, and for odd text too (quotes, escapes, non-ASCII, controls).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from services.metering.domain import Event


def _reference(event: Event) -> str:
    body = {k: v for k, v in event.__dict__.items() if k not in ("occurred_at", "occurred_at_given")}
    if event.occurred_at_given:
        body["occurred_at"] = event.occurred_at.astimezone(UTC).isoformat()
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


_text = st.text(max_size=40)
_units = st.integers(min_value=0, max_value=10_000_000_000)
_moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
) | st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)).map(
    lambda d: d.replace(tzinfo=timezone(timedelta(hours=5, minutes=30)))
)


@settings(max_examples=400, deadline=None)
@given(
    st.builds(
        Event,
        event_id=_text,
        user_id=_text,
        service=st.sampled_from(["LLM", "TTS", "STT", "EMBEDDING", "SEARCH", "AGENT"]),
        model=_text,
        provider=_text,
        input_tokens=_units,
        output_tokens=_units,
        quantity=_units,
        byok=st.booleans(),
        hold_id=_text,
        occurred_at=_moments,
        metadata=st.dictionaries(_text, _text, max_size=5),
        occurred_at_given=st.booleans(),
    )
)
def test_fingerprint_is_the_canonical_json_digest(event: Event) -> None:
    assert event.fingerprint() == _reference(event)


def test_fingerprint_tells_events_apart_and_ignores_an_untold_time() -> None:
    base = Event("e-1", "u-1", "LLM", "m", "", 10, 5, 0, False, "", datetime(2026, 1, 1, tzinfo=UTC), {"k": "v"})
    later = datetime(2026, 1, 2, tzinfo=UTC)
    assert base.fingerprint() != Event(**{**base.__dict__, "output_tokens": 6}).fingerprint()
    assert base.fingerprint() != Event(**{**base.__dict__, "metadata": {"k": "w"}}).fingerprint()
    assert base.fingerprint() != Event(**{**base.__dict__, "occurred_at": later}).fingerprint()
    untold = Event(**{**base.__dict__, "occurred_at_given": False})
    assert untold.fingerprint() == Event(**{**untold.__dict__, "occurred_at": later}).fingerprint()
