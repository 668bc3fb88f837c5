"""google.protobuf.Timestamp ↔ timezone-aware UTC datetimes, for every servicer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2


def to_timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    """None stays None, so an unset field stays unset in the message."""
    if moment is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def field_time(message: Any, field: str) -> datetime | None:
    """A Timestamp field of ``message`` as a UTC datetime; None when the field is unset."""
    if not message.HasField(field):
        return None
    moment: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return moment
