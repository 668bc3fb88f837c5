import datetime

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

class CouponKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COUPON_KIND_UNSPECIFIED: _ClassVar[CouponKind]
    COUPON_KIND_CREDIT_GRANT: _ClassVar[CouponKind]
    COUPON_KIND_TIER_TRIAL: _ClassVar[CouponKind]

class RedemptionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REDEMPTION_STATUS_UNSPECIFIED: _ClassVar[RedemptionStatus]
    REDEMPTION_STATUS_PENDING: _ClassVar[RedemptionStatus]
    REDEMPTION_STATUS_COMPLETED: _ClassVar[RedemptionStatus]
    REDEMPTION_STATUS_FAILED: _ClassVar[RedemptionStatus]
COUPON_KIND_UNSPECIFIED: CouponKind
COUPON_KIND_CREDIT_GRANT: CouponKind
COUPON_KIND_TIER_TRIAL: CouponKind
REDEMPTION_STATUS_UNSPECIFIED: RedemptionStatus
REDEMPTION_STATUS_PENDING: RedemptionStatus
REDEMPTION_STATUS_COMPLETED: RedemptionStatus
REDEMPTION_STATUS_FAILED: RedemptionStatus

class Coupon(_message.Message):
    __slots__ = ("code", "description", "kind", "credit_amount_nanos", "credit_expiry_days", "trial_tier", "trial_days", "valid_from", "expires_at", "max_redemptions", "per_user_limit", "eligible_tiers", "first_time_only", "disabled", "redemption_count", "created_at", "created_by", "stacks_on_trial")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREDIT_AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_EXPIRY_DAYS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_TIER_FIELD_NUMBER: _ClassVar[int]
    TRIAL_DAYS_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_REDEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    PER_USER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_TIERS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIME_ONLY_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    REDEMPTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    STACKS_ON_TRIAL_FIELD_NUMBER: _ClassVar[int]
    code: str
    description: str
    kind: CouponKind
    credit_amount_nanos: int
    credit_expiry_days: int
    trial_tier: str
    trial_days: int
    valid_from: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    max_redemptions: int
    per_user_limit: int
    eligible_tiers: _containers.RepeatedScalarFieldContainer[str]
    first_time_only: bool
    disabled: bool
    redemption_count: int
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    stacks_on_trial: bool
    def __init__(self, code: _Optional[str] = ..., description: _Optional[str] = ..., kind: _Optional[_Union[CouponKind, str]] = ..., credit_amount_nanos: _Optional[int] = ..., credit_expiry_days: _Optional[int] = ..., trial_tier: _Optional[str] = ..., trial_days: _Optional[int] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_redemptions: _Optional[int] = ..., per_user_limit: _Optional[int] = ..., eligible_tiers: _Optional[_Iterable[str]] = ..., first_time_only: _Optional[bool] = ..., disabled: _Optional[bool] = ..., redemption_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., stacks_on_trial: _Optional[bool] = ...) -> None: ...

class Grant(_message.Message):
    __slots__ = ("kind", "credits_nanos", "credits_expire_at", "trial_tier", "trial_days")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREDITS_NANOS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_EXPIRE_AT_FIELD_NUMBER: _ClassVar[int]
    TRIAL_TIER_FIELD_NUMBER: _ClassVar[int]
    TRIAL_DAYS_FIELD_NUMBER: _ClassVar[int]
    kind: CouponKind
    credits_nanos: int
    credits_expire_at: _timestamp_pb2.Timestamp
    trial_tier: str
    trial_days: int
    def __init__(self, kind: _Optional[_Union[CouponKind, str]] = ..., credits_nanos: _Optional[int] = ..., credits_expire_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trial_tier: _Optional[str] = ..., trial_days: _Optional[int] = ...) -> None: ...

class Redemption(_message.Message):
    __slots__ = ("redemption_id", "code", "user_id", "status", "grant", "transaction_id", "balance_after_nanos", "trial_ends_at", "previous_tier", "created_at", "completed_at")
    REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_NANOS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TIER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    redemption_id: str
    code: str
    user_id: str
    status: RedemptionStatus
    grant: Grant
    transaction_id: str
    balance_after_nanos: int
    trial_ends_at: _timestamp_pb2.Timestamp
    previous_tier: str
    created_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, redemption_id: _Optional[str] = ..., code: _Optional[str] = ..., user_id: _Optional[str] = ..., status: _Optional[_Union[RedemptionStatus, str]] = ..., grant: _Optional[_Union[Grant, _Mapping]] = ..., transaction_id: _Optional[str] = ..., balance_after_nanos: _Optional[int] = ..., trial_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_tier: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCouponRequest(_message.Message):
    __slots__ = ("code", "description", "kind", "credit_amount_nanos", "credit_expiry_days", "trial_tier", "trial_days", "valid_from", "expires_at", "max_redemptions", "per_user_limit", "eligible_tiers", "first_time_only", "request_id", "stacks_on_trial")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREDIT_AMOUNT_NANOS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_EXPIRY_DAYS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_TIER_FIELD_NUMBER: _ClassVar[int]
    TRIAL_DAYS_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_REDEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    PER_USER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    ELIGIBLE_TIERS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIME_ONLY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STACKS_ON_TRIAL_FIELD_NUMBER: _ClassVar[int]
    code: str
    description: str
    kind: CouponKind
    credit_amount_nanos: int
    credit_expiry_days: int
    trial_tier: str
    trial_days: int
    valid_from: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    max_redemptions: int
    per_user_limit: int
    eligible_tiers: _containers.RepeatedScalarFieldContainer[str]
    first_time_only: bool
    request_id: str
    stacks_on_trial: bool
    def __init__(self, code: _Optional[str] = ..., description: _Optional[str] = ..., kind: _Optional[_Union[CouponKind, str]] = ..., credit_amount_nanos: _Optional[int] = ..., credit_expiry_days: _Optional[int] = ..., trial_tier: _Optional[str] = ..., trial_days: _Optional[int] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_redemptions: _Optional[int] = ..., per_user_limit: _Optional[int] = ..., eligible_tiers: _Optional[_Iterable[str]] = ..., first_time_only: _Optional[bool] = ..., request_id: _Optional[str] = ..., stacks_on_trial: _Optional[bool] = ...) -> None: ...

class CreateCouponResponse(_message.Message):
    __slots__ = ("coupon",)
    COUPON_FIELD_NUMBER: _ClassVar[int]
    coupon: Coupon
    def __init__(self, coupon: _Optional[_Union[Coupon, _Mapping]] = ...) -> None: ...

class ValidateCouponRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class ValidateCouponResponse(_message.Message):
    __slots__ = ("valid", "reason", "grant", "code", "description")
    VALID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    reason: str
    grant: Grant
    code: str
    description: str
    def __init__(self, valid: _Optional[bool] = ..., reason: _Optional[str] = ..., grant: _Optional[_Union[Grant, _Mapping]] = ..., code: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class RedeemCouponRequest(_message.Message):
    __slots__ = ("code", "request_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    request_id: str
    def __init__(self, code: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RedeemCouponResponse(_message.Message):
    __slots__ = ("redemption_id", "credits_granted_nanos", "balance_after_nanos", "trial_tier", "trial_ends_at", "redemption")
    REDEMPTION_ID_FIELD_NUMBER: _ClassVar[int]
    CREDITS_GRANTED_NANOS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_NANOS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_TIER_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    REDEMPTION_FIELD_NUMBER: _ClassVar[int]
    redemption_id: str
    credits_granted_nanos: int
    balance_after_nanos: int
    trial_tier: str
    trial_ends_at: _timestamp_pb2.Timestamp
    redemption: Redemption
    def __init__(self, redemption_id: _Optional[str] = ..., credits_granted_nanos: _Optional[int] = ..., balance_after_nanos: _Optional[int] = ..., trial_tier: _Optional[str] = ..., trial_ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., redemption: _Optional[_Union[Redemption, _Mapping]] = ...) -> None: ...

class ListCouponsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "include_disabled")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DISABLED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    include_disabled: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_disabled: _Optional[bool] = ...) -> None: ...

class ListCouponsResponse(_message.Message):
    __slots__ = ("coupons", "next_page_token")
    COUPONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    coupons: _containers.RepeatedCompositeFieldContainer[Coupon]
    next_page_token: str
    def __init__(self, coupons: _Optional[_Iterable[_Union[Coupon, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCouponRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class GetCouponResponse(_message.Message):
    __slots__ = ("coupon",)
    COUPON_FIELD_NUMBER: _ClassVar[int]
    coupon: Coupon
    def __init__(self, coupon: _Optional[_Union[Coupon, _Mapping]] = ...) -> None: ...

class DisableCouponRequest(_message.Message):
    __slots__ = ("code", "reason", "request_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    reason: str
    request_id: str
    def __init__(self, code: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DisableCouponResponse(_message.Message):
    __slots__ = ("coupon",)
    COUPON_FIELD_NUMBER: _ClassVar[int]
    coupon: Coupon
    def __init__(self, coupon: _Optional[_Union[Coupon, _Mapping]] = ...) -> None: ...

class ListRedemptionsRequest(_message.Message):
    __slots__ = ("code", "user_id", "page_size", "page_token")
    CODE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    code: str
    user_id: str
    page_size: int
    page_token: str
    def __init__(self, code: _Optional[str] = ..., user_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRedemptionsResponse(_message.Message):
    __slots__ = ("redemptions", "next_page_token")
    REDEMPTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    redemptions: _containers.RepeatedCompositeFieldContainer[Redemption]
    next_page_token: str
    def __init__(self, redemptions: _Optional[_Iterable[_Union[Redemption, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
