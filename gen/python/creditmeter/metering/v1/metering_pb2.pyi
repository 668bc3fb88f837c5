import datetime

from creditmeter.common.v1 import service_kind_pb2 as _service_kind_pb2
from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_STATE_UNSPECIFIED: _ClassVar[EventState]
    EVENT_STATE_PENDING: _ClassVar[EventState]
    EVENT_STATE_CHARGED: _ClassVar[EventState]
    EVENT_STATE_SHORTFALL: _ClassVar[EventState]
    EVENT_STATE_PARKED: _ClassVar[EventState]

class Granularity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANULARITY_UNSPECIFIED: _ClassVar[Granularity]
    GRANULARITY_DAY: _ClassVar[Granularity]
    GRANULARITY_MONTH: _ClassVar[Granularity]
EVENT_STATE_UNSPECIFIED: EventState
EVENT_STATE_PENDING: EventState
EVENT_STATE_CHARGED: EventState
EVENT_STATE_SHORTFALL: EventState
EVENT_STATE_PARKED: EventState
GRANULARITY_UNSPECIFIED: Granularity
GRANULARITY_DAY: Granularity
GRANULARITY_MONTH: Granularity

class UsageEvent(_message.Message):
    __slots__ = ("event_id", "user_id", "service", "model", "provider", "input_tokens", "output_tokens", "quantity", "byok", "hold_id", "occurred_at", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BYOK_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    user_id: str
    service: _service_kind_pb2.ServiceKind
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    quantity: int
    byok: bool
    hold_id: str
    occurred_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, event_id: _Optional[str] = ..., user_id: _Optional[str] = ..., service: _Optional[_Union[_service_kind_pb2.ServiceKind, str]] = ..., model: _Optional[str] = ..., provider: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., quantity: _Optional[int] = ..., byok: _Optional[bool] = ..., hold_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RecordedEvent(_message.Message):
    __slots__ = ("event", "cost_nanos", "charged_nanos", "shortfall_nanos", "transaction_id", "price_version", "charged", "recorded_at", "state", "park_reason", "attempts", "last_error", "next_attempt_at")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    CHARGED_NANOS_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_NANOS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHARGED_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PARK_REASON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    event: UsageEvent
    cost_nanos: int
    charged_nanos: int
    shortfall_nanos: int
    transaction_id: str
    price_version: str
    charged: bool
    recorded_at: _timestamp_pb2.Timestamp
    state: EventState
    park_reason: str
    attempts: int
    last_error: str
    next_attempt_at: _timestamp_pb2.Timestamp
    def __init__(self, event: _Optional[_Union[UsageEvent, _Mapping]] = ..., cost_nanos: _Optional[int] = ..., charged_nanos: _Optional[int] = ..., shortfall_nanos: _Optional[int] = ..., transaction_id: _Optional[str] = ..., price_version: _Optional[str] = ..., charged: _Optional[bool] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[EventState, str]] = ..., park_reason: _Optional[str] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuthorizeRequest(_message.Message):
    __slots__ = ("user_id", "service", "model", "input_tokens", "max_output_tokens", "quantity", "byok", "hold_ttl_seconds", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BYOK_FIELD_NUMBER: _ClassVar[int]
    HOLD_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    service: _service_kind_pb2.ServiceKind
    model: str
    input_tokens: int
    max_output_tokens: int
    quantity: int
    byok: bool
    hold_ttl_seconds: int
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., service: _Optional[_Union[_service_kind_pb2.ServiceKind, str]] = ..., model: _Optional[str] = ..., input_tokens: _Optional[int] = ..., max_output_tokens: _Optional[int] = ..., quantity: _Optional[int] = ..., byok: _Optional[bool] = ..., hold_ttl_seconds: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("allowed", "reason", "hold_id", "held_nanos", "estimated_cost_nanos", "calls_used", "calls_limit", "calls_remaining", "price_version")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_NANOS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    CALLS_USED_FIELD_NUMBER: _ClassVar[int]
    CALLS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CALLS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    hold_id: str
    held_nanos: int
    estimated_cost_nanos: int
    calls_used: int
    calls_limit: int
    calls_remaining: int
    price_version: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., hold_id: _Optional[str] = ..., held_nanos: _Optional[int] = ..., estimated_cost_nanos: _Optional[int] = ..., calls_used: _Optional[int] = ..., calls_limit: _Optional[int] = ..., calls_remaining: _Optional[int] = ..., price_version: _Optional[str] = ...) -> None: ...

class TrackUsageRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: UsageEvent
    def __init__(self, event: _Optional[_Union[UsageEvent, _Mapping]] = ...) -> None: ...

class TrackUsageResponse(_message.Message):
    __slots__ = ("event_id", "cost_nanos", "charged_nanos", "shortfall_nanos", "transaction_id", "duplicate", "price_version", "state")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    CHARGED_NANOS_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_NANOS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    cost_nanos: int
    charged_nanos: int
    shortfall_nanos: int
    transaction_id: str
    duplicate: bool
    price_version: str
    state: EventState
    def __init__(self, event_id: _Optional[str] = ..., cost_nanos: _Optional[int] = ..., charged_nanos: _Optional[int] = ..., shortfall_nanos: _Optional[int] = ..., transaction_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., price_version: _Optional[str] = ..., state: _Optional[_Union[EventState, str]] = ...) -> None: ...

class TrackUsageBatchRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[UsageEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[UsageEvent, _Mapping]]] = ...) -> None: ...

class TrackUsageBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TrackUsageResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[TrackUsageResponse, _Mapping]]] = ...) -> None: ...

class UsageTotals(_message.Message):
    __slots__ = ("event_count", "input_tokens", "output_tokens", "quantity", "cost_nanos", "charged_nanos", "shortfall_nanos")
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    CHARGED_NANOS_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_NANOS_FIELD_NUMBER: _ClassVar[int]
    event_count: int
    input_tokens: int
    output_tokens: int
    quantity: int
    cost_nanos: int
    charged_nanos: int
    shortfall_nanos: int
    def __init__(self, event_count: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., quantity: _Optional[int] = ..., cost_nanos: _Optional[int] = ..., charged_nanos: _Optional[int] = ..., shortfall_nanos: _Optional[int] = ...) -> None: ...

class ServiceUsage(_message.Message):
    __slots__ = ("service", "totals")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    service: _service_kind_pb2.ServiceKind
    totals: UsageTotals
    def __init__(self, service: _Optional[_Union[_service_kind_pb2.ServiceKind, str]] = ..., totals: _Optional[_Union[UsageTotals, _Mapping]] = ...) -> None: ...

class GetUsageSummaryRequest(_message.Message):
    __slots__ = ("user_id", "start_time", "end_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUsageSummaryResponse(_message.Message):
    __slots__ = ("user_id", "totals", "by_service", "calls_used", "calls_limit", "quota_window_start")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    BY_SERVICE_FIELD_NUMBER: _ClassVar[int]
    CALLS_USED_FIELD_NUMBER: _ClassVar[int]
    CALLS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    QUOTA_WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    totals: UsageTotals
    by_service: _containers.RepeatedCompositeFieldContainer[ServiceUsage]
    calls_used: int
    calls_limit: int
    quota_window_start: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., totals: _Optional[_Union[UsageTotals, _Mapping]] = ..., by_service: _Optional[_Iterable[_Union[ServiceUsage, _Mapping]]] = ..., calls_used: _Optional[int] = ..., calls_limit: _Optional[int] = ..., quota_window_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUsageByModelRequest(_message.Message):
    __slots__ = ("user_id", "start_time", "end_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelUsage(_message.Message):
    __slots__ = ("model", "event_count", "input_tokens", "output_tokens", "cost_nanos", "charged_nanos")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    CHARGED_NANOS_FIELD_NUMBER: _ClassVar[int]
    model: str
    event_count: int
    input_tokens: int
    output_tokens: int
    cost_nanos: int
    charged_nanos: int
    def __init__(self, model: _Optional[str] = ..., event_count: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_nanos: _Optional[int] = ..., charged_nanos: _Optional[int] = ...) -> None: ...

class GetUsageByModelResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ModelUsage]
    def __init__(self, rows: _Optional[_Iterable[_Union[ModelUsage, _Mapping]]] = ...) -> None: ...

class GetUsageByDateRequest(_message.Message):
    __slots__ = ("user_id", "start_time", "end_time", "granularity")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    GRANULARITY_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    granularity: Granularity
    def __init__(self, user_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., granularity: _Optional[_Union[Granularity, str]] = ...) -> None: ...

class DateUsage(_message.Message):
    __slots__ = ("date", "event_count", "input_tokens", "output_tokens", "cost_nanos", "charged_nanos")
    DATE_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    CHARGED_NANOS_FIELD_NUMBER: _ClassVar[int]
    date: str
    event_count: int
    input_tokens: int
    output_tokens: int
    cost_nanos: int
    charged_nanos: int
    def __init__(self, date: _Optional[str] = ..., event_count: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_nanos: _Optional[int] = ..., charged_nanos: _Optional[int] = ...) -> None: ...

class GetUsageByDateResponse(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[DateUsage]
    def __init__(self, rows: _Optional[_Iterable[_Union[DateUsage, _Mapping]]] = ...) -> None: ...

class ListUsageEventsRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListUsageEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RecordedEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[RecordedEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetUsageEventRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class GetUsageEventResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: RecordedEvent
    def __init__(self, event: _Optional[_Union[RecordedEvent, _Mapping]] = ...) -> None: ...

class ListParkedEventsRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPendingEventsRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPendingEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token", "total")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RecordedEvent]
    next_page_token: str
    total: int
    def __init__(self, events: _Optional[_Iterable[_Union[RecordedEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class RetryParkedEventsRequest(_message.Message):
    __slots__ = ("event_ids", "request_id")
    EVENT_IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    event_ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, event_ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RetriedEvent(_message.Message):
    __slots__ = ("event", "retried")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    event: RecordedEvent
    retried: bool
    def __init__(self, event: _Optional[_Union[RecordedEvent, _Mapping]] = ..., retried: _Optional[bool] = ...) -> None: ...

class RetryParkedEventsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RetriedEvent]
    def __init__(self, results: _Optional[_Iterable[_Union[RetriedEvent, _Mapping]]] = ...) -> None: ...

class ListParkedEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RecordedEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[RecordedEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
