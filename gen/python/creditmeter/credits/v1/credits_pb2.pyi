import datetime

from buf.validate import validate_pb2 as _validate_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import error_details_pb2 as _error_details_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_KIND_UNSPECIFIED: _ClassVar[TransactionKind]
    TRANSACTION_KIND_TIER_ALLOCATION: _ClassVar[TransactionKind]
    TRANSACTION_KIND_ALLOCATION: _ClassVar[TransactionKind]
    TRANSACTION_KIND_DEDUCTION: _ClassVar[TransactionKind]
    TRANSACTION_KIND_HOLD_CAPTURE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_REFUND: _ClassVar[TransactionKind]
    TRANSACTION_KIND_EXPIRY: _ClassVar[TransactionKind]

class GrantSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GRANT_SOURCE_UNSPECIFIED: _ClassVar[GrantSource]
    GRANT_SOURCE_TIER: _ClassVar[GrantSource]
    GRANT_SOURCE_ADMIN: _ClassVar[GrantSource]
    GRANT_SOURCE_COUPON: _ClassVar[GrantSource]
    GRANT_SOURCE_REFUND: _ClassVar[GrantSource]

class HoldStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOLD_STATUS_UNSPECIFIED: _ClassVar[HoldStatus]
    HOLD_STATUS_ACTIVE: _ClassVar[HoldStatus]
    HOLD_STATUS_CAPTURED: _ClassVar[HoldStatus]
    HOLD_STATUS_RELEASED: _ClassVar[HoldStatus]
    HOLD_STATUS_EXPIRED: _ClassVar[HoldStatus]

class ReportInterval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_INTERVAL_UNSPECIFIED: _ClassVar[ReportInterval]
    REPORT_INTERVAL_DAY: _ClassVar[ReportInterval]
    REPORT_INTERVAL_MONTH: _ClassVar[ReportInterval]

class UsageOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_OUTCOME_UNSPECIFIED: _ClassVar[UsageOutcome]
    USAGE_OUTCOME_CHARGED: _ClassVar[UsageOutcome]
    USAGE_OUTCOME_SHORTFALL: _ClassVar[UsageOutcome]
    USAGE_OUTCOME_REUSED: _ClassVar[UsageOutcome]
TRANSACTION_KIND_UNSPECIFIED: TransactionKind
TRANSACTION_KIND_TIER_ALLOCATION: TransactionKind
TRANSACTION_KIND_ALLOCATION: TransactionKind
TRANSACTION_KIND_DEDUCTION: TransactionKind
TRANSACTION_KIND_HOLD_CAPTURE: TransactionKind
TRANSACTION_KIND_REFUND: TransactionKind
TRANSACTION_KIND_EXPIRY: TransactionKind
GRANT_SOURCE_UNSPECIFIED: GrantSource
GRANT_SOURCE_TIER: GrantSource
GRANT_SOURCE_ADMIN: GrantSource
GRANT_SOURCE_COUPON: GrantSource
GRANT_SOURCE_REFUND: GrantSource
HOLD_STATUS_UNSPECIFIED: HoldStatus
HOLD_STATUS_ACTIVE: HoldStatus
HOLD_STATUS_CAPTURED: HoldStatus
HOLD_STATUS_RELEASED: HoldStatus
HOLD_STATUS_EXPIRED: HoldStatus
REPORT_INTERVAL_UNSPECIFIED: ReportInterval
REPORT_INTERVAL_DAY: ReportInterval
REPORT_INTERVAL_MONTH: ReportInterval
USAGE_OUTCOME_UNSPECIFIED: UsageOutcome
USAGE_OUTCOME_CHARGED: UsageOutcome
USAGE_OUTCOME_SHORTFALL: UsageOutcome
USAGE_OUTCOME_REUSED: UsageOutcome

class Audit(_message.Message):
    __slots__ = ("actor_subject", "actor_role", "reason", "service", "model", "reference_id", "price_version")
    ACTOR_SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    actor_subject: str
    actor_role: str
    reason: str
    service: str
    model: str
    reference_id: str
    price_version: str
    def __init__(self, actor_subject: _Optional[str] = ..., actor_role: _Optional[str] = ..., reason: _Optional[str] = ..., service: _Optional[str] = ..., model: _Optional[str] = ..., reference_id: _Optional[str] = ..., price_version: _Optional[str] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("transaction_id", "user_id", "kind", "amount_nanos", "balance_after_nanos", "debit_account", "credit_account", "request_id", "related_transaction_id", "hold_id", "audit", "created_at")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_NANOS_FIELD_NUMBER: _ClassVar[int]
    DEBIT_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RELATED_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    user_id: str
    kind: TransactionKind
    amount_nanos: int
    balance_after_nanos: int
    debit_account: str
    credit_account: str
    request_id: str
    related_transaction_id: str
    hold_id: str
    audit: Audit
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, transaction_id: _Optional[str] = ..., user_id: _Optional[str] = ..., kind: _Optional[_Union[TransactionKind, str]] = ..., amount_nanos: _Optional[int] = ..., balance_after_nanos: _Optional[int] = ..., debit_account: _Optional[str] = ..., credit_account: _Optional[str] = ..., request_id: _Optional[str] = ..., related_transaction_id: _Optional[str] = ..., hold_id: _Optional[str] = ..., audit: _Optional[_Union[Audit, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Account(_message.Message):
    __slots__ = ("user_id", "tier", "balance_nanos", "available_nanos", "held_nanos", "period_start", "period_end", "created_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    BALANCE_NANOS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_NANOS_FIELD_NUMBER: _ClassVar[int]
    HELD_NANOS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tier: str
    balance_nanos: int
    available_nanos: int
    held_nanos: int
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., tier: _Optional[str] = ..., balance_nanos: _Optional[int] = ..., available_nanos: _Optional[int] = ..., held_nanos: _Optional[int] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("user_id", "tier", "balance_nanos", "available_nanos", "held_nanos", "period_start", "period_end", "expiring")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    BALANCE_NANOS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_NANOS_FIELD_NUMBER: _ClassVar[int]
    HELD_NANOS_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    EXPIRING_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tier: str
    balance_nanos: int
    available_nanos: int
    held_nanos: int
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    expiring: _containers.RepeatedCompositeFieldContainer[GrantSummary]
    def __init__(self, user_id: _Optional[str] = ..., tier: _Optional[str] = ..., balance_nanos: _Optional[int] = ..., available_nanos: _Optional[int] = ..., held_nanos: _Optional[int] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expiring: _Optional[_Iterable[_Union[GrantSummary, _Mapping]]] = ...) -> None: ...

class WatchBalanceRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class WatchBalanceResponse(_message.Message):
    __slots__ = ("balance",)
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    balance: GetBalanceResponse
    def __init__(self, balance: _Optional[_Union[GetBalanceResponse, _Mapping]] = ...) -> None: ...

class GrantSummary(_message.Message):
    __slots__ = ("grant_id", "source", "remaining_nanos", "expires_at")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REMAINING_NANOS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    source: GrantSource
    remaining_nanos: int
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, grant_id: _Optional[str] = ..., source: _Optional[_Union[GrantSource, str]] = ..., remaining_nanos: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("user_id", "page_size", "page_token", "kind", "start_time", "end_time")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    page_size: int
    page_token: str
    kind: TransactionKind
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., kind: _Optional[_Union[TransactionKind, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CompareTiersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Tier(_message.Message):
    __slots__ = ("tier_id", "display_name", "price_cents", "billing_period", "credits_nanos", "api_call_limit", "api_call_period", "byok_allowed", "markup_percent", "markup_basis_points", "byok_markup_basis_points", "free_model_fee_per_1k_tokens_nanos", "features")
    TIER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    BILLING_PERIOD_FIELD_NUMBER: _ClassVar[int]
    CREDITS_NANOS_FIELD_NUMBER: _ClassVar[int]
    API_CALL_LIMIT_FIELD_NUMBER: _ClassVar[int]
    API_CALL_PERIOD_FIELD_NUMBER: _ClassVar[int]
    BYOK_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    MARKUP_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MARKUP_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    BYOK_MARKUP_BASIS_POINTS_FIELD_NUMBER: _ClassVar[int]
    FREE_MODEL_FEE_PER_1K_TOKENS_NANOS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    tier_id: str
    display_name: str
    price_cents: int
    billing_period: str
    credits_nanos: int
    api_call_limit: int
    api_call_period: str
    byok_allowed: bool
    markup_percent: int
    markup_basis_points: int
    byok_markup_basis_points: int
    free_model_fee_per_1k_tokens_nanos: int
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tier_id: _Optional[str] = ..., display_name: _Optional[str] = ..., price_cents: _Optional[int] = ..., billing_period: _Optional[str] = ..., credits_nanos: _Optional[int] = ..., api_call_limit: _Optional[int] = ..., api_call_period: _Optional[str] = ..., byok_allowed: _Optional[bool] = ..., markup_percent: _Optional[int] = ..., markup_basis_points: _Optional[int] = ..., byok_markup_basis_points: _Optional[int] = ..., free_model_fee_per_1k_tokens_nanos: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class CompareTiersResponse(_message.Message):
    __slots__ = ("tiers",)
    TIERS_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedCompositeFieldContainer[Tier]
    def __init__(self, tiers: _Optional[_Iterable[_Union[Tier, _Mapping]]] = ...) -> None: ...

class AllocateRequest(_message.Message):
    __slots__ = ("user_id", "amount_nanos", "reason", "request_id", "source", "expires_at", "reference_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    amount_nanos: int
    reason: str
    request_id: str
    source: GrantSource
    expires_at: _timestamp_pb2.Timestamp
    reference_id: str
    def __init__(self, user_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., source: _Optional[_Union[GrantSource, str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reference_id: _Optional[str] = ...) -> None: ...

class AllocateResponse(_message.Message):
    __slots__ = ("transaction", "grant_id")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    grant_id: str
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., grant_id: _Optional[str] = ...) -> None: ...

class DeductRequest(_message.Message):
    __slots__ = ("user_id", "amount_nanos", "reason", "request_id", "model", "reference_id", "price_version")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    amount_nanos: int
    reason: str
    request_id: str
    model: str
    reference_id: str
    price_version: str
    def __init__(self, user_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ..., reference_id: _Optional[str] = ..., price_version: _Optional[str] = ...) -> None: ...

class DeductResponse(_message.Message):
    __slots__ = ("transaction", "available_after_nanos")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_AFTER_NANOS_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    available_after_nanos: int
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., available_after_nanos: _Optional[int] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("user_id", "amount_nanos", "reason", "request_id", "transaction_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    amount_nanos: int
    reason: str
    request_id: str
    transaction_id: str
    def __init__(self, user_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., transaction_id: _Optional[str] = ...) -> None: ...

class RefundResponse(_message.Message):
    __slots__ = ("transaction", "refundable_remaining_nanos")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    REFUNDABLE_REMAINING_NANOS_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    refundable_remaining_nanos: int
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., refundable_remaining_nanos: _Optional[int] = ...) -> None: ...

class Hold(_message.Message):
    __slots__ = ("hold_id", "user_id", "amount_nanos", "captured_nanos", "status", "expires_at", "created_at", "capture_transaction_id")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_NANOS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    user_id: str
    amount_nanos: int
    captured_nanos: int
    status: HoldStatus
    expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    capture_transaction_id: str
    def __init__(self, hold_id: _Optional[str] = ..., user_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., captured_nanos: _Optional[int] = ..., status: _Optional[_Union[HoldStatus, str]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., capture_transaction_id: _Optional[str] = ...) -> None: ...

class CreateHoldRequest(_message.Message):
    __slots__ = ("user_id", "amount_nanos", "ttl_seconds", "request_id", "reason", "reference_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    amount_nanos: int
    ttl_seconds: int
    request_id: str
    reason: str
    reference_id: str
    def __init__(self, user_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., ttl_seconds: _Optional[int] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., reference_id: _Optional[str] = ...) -> None: ...

class CreateHoldResponse(_message.Message):
    __slots__ = ("hold_id", "hold", "available_after_nanos")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_AFTER_NANOS_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    hold: Hold
    available_after_nanos: int
    def __init__(self, hold_id: _Optional[str] = ..., hold: _Optional[_Union[Hold, _Mapping]] = ..., available_after_nanos: _Optional[int] = ...) -> None: ...

class CaptureHoldRequest(_message.Message):
    __slots__ = ("hold_id", "amount_nanos", "request_id", "reason", "model", "reference_id", "price_version")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    amount_nanos: int
    request_id: str
    reason: str
    model: str
    reference_id: str
    price_version: str
    def __init__(self, hold_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., model: _Optional[str] = ..., reference_id: _Optional[str] = ..., price_version: _Optional[str] = ...) -> None: ...

class CaptureHoldResponse(_message.Message):
    __slots__ = ("hold", "transaction", "released_nanos")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    RELEASED_NANOS_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    transaction: Transaction
    released_nanos: int
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ..., transaction: _Optional[_Union[Transaction, _Mapping]] = ..., released_nanos: _Optional[int] = ...) -> None: ...

class ReleaseHoldRequest(_message.Message):
    __slots__ = ("hold_id", "request_id")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    request_id: str
    def __init__(self, hold_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReleaseHoldResponse(_message.Message):
    __slots__ = ("hold",)
    HOLD_FIELD_NUMBER: _ClassVar[int]
    hold: Hold
    def __init__(self, hold: _Optional[_Union[Hold, _Mapping]] = ...) -> None: ...

class SetTierRequest(_message.Message):
    __slots__ = ("user_id", "tier", "request_id", "reason", "expected_change_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tier: str
    request_id: str
    reason: str
    expected_change_id: str
    def __init__(self, user_id: _Optional[str] = ..., tier: _Optional[str] = ..., request_id: _Optional[str] = ..., reason: _Optional[str] = ..., expected_change_id: _Optional[str] = ...) -> None: ...

class SetTierResponse(_message.Message):
    __slots__ = ("account", "previous_tier", "change_id")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TIER_FIELD_NUMBER: _ClassVar[int]
    CHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    account: Account
    previous_tier: str
    change_id: str
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., previous_tier: _Optional[str] = ..., change_id: _Optional[str] = ...) -> None: ...

class GetPlatformReportRequest(_message.Message):
    __slots__ = ("start_time", "end_time", "interval", "top_users_count")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TOP_USERS_COUNT_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    interval: ReportInterval
    top_users_count: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval: _Optional[_Union[ReportInterval, str]] = ..., top_users_count: _Optional[int] = ...) -> None: ...

class PlatformDateRow(_message.Message):
    __slots__ = ("date", "usage_revenue_nanos", "granted_nanos", "active_user_count", "charge_count")
    DATE_FIELD_NUMBER: _ClassVar[int]
    USAGE_REVENUE_NANOS_FIELD_NUMBER: _ClassVar[int]
    GRANTED_NANOS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_USER_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHARGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    date: str
    usage_revenue_nanos: int
    granted_nanos: int
    active_user_count: int
    charge_count: int
    def __init__(self, date: _Optional[str] = ..., usage_revenue_nanos: _Optional[int] = ..., granted_nanos: _Optional[int] = ..., active_user_count: _Optional[int] = ..., charge_count: _Optional[int] = ...) -> None: ...

class PlatformModelRow(_message.Message):
    __slots__ = ("model", "usage_revenue_nanos", "charge_count")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USAGE_REVENUE_NANOS_FIELD_NUMBER: _ClassVar[int]
    CHARGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    model: str
    usage_revenue_nanos: int
    charge_count: int
    def __init__(self, model: _Optional[str] = ..., usage_revenue_nanos: _Optional[int] = ..., charge_count: _Optional[int] = ...) -> None: ...

class PlatformTierRow(_message.Message):
    __slots__ = ("tier", "account_count", "usage_revenue_nanos", "price_cents")
    TIER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_COUNT_FIELD_NUMBER: _ClassVar[int]
    USAGE_REVENUE_NANOS_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    tier: str
    account_count: int
    usage_revenue_nanos: int
    price_cents: int
    def __init__(self, tier: _Optional[str] = ..., account_count: _Optional[int] = ..., usage_revenue_nanos: _Optional[int] = ..., price_cents: _Optional[int] = ...) -> None: ...

class PlatformUserRow(_message.Message):
    __slots__ = ("user_id", "tier", "usage_revenue_nanos")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    USAGE_REVENUE_NANOS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    tier: str
    usage_revenue_nanos: int
    def __init__(self, user_id: _Optional[str] = ..., tier: _Optional[str] = ..., usage_revenue_nanos: _Optional[int] = ...) -> None: ...

class GetPlatformReportResponse(_message.Message):
    __slots__ = ("by_date", "by_model", "by_tier", "top_users", "start_time", "end_time")
    BY_DATE_FIELD_NUMBER: _ClassVar[int]
    BY_MODEL_FIELD_NUMBER: _ClassVar[int]
    BY_TIER_FIELD_NUMBER: _ClassVar[int]
    TOP_USERS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    by_date: _containers.RepeatedCompositeFieldContainer[PlatformDateRow]
    by_model: _containers.RepeatedCompositeFieldContainer[PlatformModelRow]
    by_tier: _containers.RepeatedCompositeFieldContainer[PlatformTierRow]
    top_users: _containers.RepeatedCompositeFieldContainer[PlatformUserRow]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, by_date: _Optional[_Iterable[_Union[PlatformDateRow, _Mapping]]] = ..., by_model: _Optional[_Iterable[_Union[PlatformModelRow, _Mapping]]] = ..., by_tier: _Optional[_Iterable[_Union[PlatformTierRow, _Mapping]]] = ..., top_users: _Optional[_Iterable[_Union[PlatformUserRow, _Mapping]]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "tier", "user_id_prefix")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    USER_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    tier: str
    user_id_prefix: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., tier: _Optional[str] = ..., user_id_prefix: _Optional[str] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts", "next_page_token")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResetPeriodsRequest(_message.Message):
    __slots__ = ("user_id", "request_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    request_id: str
    def __init__(self, user_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResetPeriodsResponse(_message.Message):
    __slots__ = ("reset_count",)
    RESET_COUNT_FIELD_NUMBER: _ClassVar[int]
    reset_count: int
    def __init__(self, reset_count: _Optional[int] = ...) -> None: ...

class UsageCharge(_message.Message):
    __slots__ = ("request_id", "amount_nanos", "model", "reference_id", "price_version", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    amount_nanos: int
    model: str
    reference_id: str
    price_version: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., model: _Optional[str] = ..., reference_id: _Optional[str] = ..., price_version: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ChargeUsageRequest(_message.Message):
    __slots__ = ("user_id", "charges", "allow_partial")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHARGES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    charges: _containers.RepeatedCompositeFieldContainer[UsageCharge]
    allow_partial: bool
    def __init__(self, user_id: _Optional[str] = ..., charges: _Optional[_Iterable[_Union[UsageCharge, _Mapping]]] = ..., allow_partial: _Optional[bool] = ...) -> None: ...

class UsageChargeResult(_message.Message):
    __slots__ = ("request_id", "charged_nanos", "shortfall_nanos", "transaction_id", "duplicate")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHARGED_NANOS_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_NANOS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    charged_nanos: int
    shortfall_nanos: int
    transaction_id: str
    duplicate: bool
    def __init__(self, request_id: _Optional[str] = ..., charged_nanos: _Optional[int] = ..., shortfall_nanos: _Optional[int] = ..., transaction_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class ChargeUsageResponse(_message.Message):
    __slots__ = ("results", "balance_after_nanos")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_NANOS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UsageChargeResult]
    balance_after_nanos: int
    def __init__(self, results: _Optional[_Iterable[_Union[UsageChargeResult, _Mapping]]] = ..., balance_after_nanos: _Optional[int] = ...) -> None: ...

class ErrorDetailTypes(_message.Message):
    __slots__ = ("error_info",)
    ERROR_INFO_FIELD_NUMBER: _ClassVar[int]
    error_info: _error_details_pb2.ErrorInfo
    def __init__(self, error_info: _Optional[_Union[_error_details_pb2.ErrorInfo, _Mapping]] = ...) -> None: ...

class UsageItem(_message.Message):
    __slots__ = ("user_id", "event_id", "amount_nanos", "hold_id", "service", "model", "price_version")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    event_id: str
    amount_nanos: int
    hold_id: str
    service: str
    model: str
    price_version: str
    def __init__(self, user_id: _Optional[str] = ..., event_id: _Optional[str] = ..., amount_nanos: _Optional[int] = ..., hold_id: _Optional[str] = ..., service: _Optional[str] = ..., model: _Optional[str] = ..., price_version: _Optional[str] = ...) -> None: ...

class CreateHoldsRequest(_message.Message):
    __slots__ = ("holds",)
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    holds: _containers.RepeatedCompositeFieldContainer[CreateHoldRequest]
    def __init__(self, holds: _Optional[_Iterable[_Union[CreateHoldRequest, _Mapping]]] = ...) -> None: ...

class CreateHoldsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CreateHoldsResult]
    def __init__(self, results: _Optional[_Iterable[_Union[CreateHoldsResult, _Mapping]]] = ...) -> None: ...

class CreateHoldsResult(_message.Message):
    __slots__ = ("hold", "error")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    hold: CreateHoldResponse
    error: _status_pb2.Status
    def __init__(self, hold: _Optional[_Union[CreateHoldResponse, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class ChargeUsageBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[UsageItem]
    def __init__(self, items: _Optional[_Iterable[_Union[UsageItem, _Mapping]]] = ...) -> None: ...

class UsageItemResult(_message.Message):
    __slots__ = ("user_id", "event_id", "outcome", "charged_nanos", "shortfall_nanos", "transaction_id", "duplicate")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CHARGED_NANOS_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_NANOS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    event_id: str
    outcome: UsageOutcome
    charged_nanos: int
    shortfall_nanos: int
    transaction_id: str
    duplicate: bool
    def __init__(self, user_id: _Optional[str] = ..., event_id: _Optional[str] = ..., outcome: _Optional[_Union[UsageOutcome, str]] = ..., charged_nanos: _Optional[int] = ..., shortfall_nanos: _Optional[int] = ..., transaction_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class ChargeUsageBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UsageItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[UsageItemResult, _Mapping]]] = ...) -> None: ...

class GetAccountStatesRequest(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AccountState(_message.Message):
    __slots__ = ("user_id", "exists", "tier", "period_start", "period_end")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    PERIOD_START_FIELD_NUMBER: _ClassVar[int]
    PERIOD_END_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    exists: bool
    tier: str
    period_start: _timestamp_pb2.Timestamp
    period_end: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., exists: _Optional[bool] = ..., tier: _Optional[str] = ..., period_start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., period_end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetAccountStatesResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[AccountState]
    def __init__(self, accounts: _Optional[_Iterable[_Union[AccountState, _Mapping]]] = ...) -> None: ...
