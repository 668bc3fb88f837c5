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

class KeySource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_SOURCE_UNSPECIFIED: _ClassVar[KeySource]
    KEY_SOURCE_PROVISIONED: _ClassVar[KeySource]
    KEY_SOURCE_BYOK: _ClassVar[KeySource]
KEY_SOURCE_UNSPECIFIED: KeySource
KEY_SOURCE_PROVISIONED: KeySource
KEY_SOURCE_BYOK: KeySource

class Account(_message.Message):
    __slots__ = ("user_id", "key_hash", "key_hint", "limit_nanos", "usage_nanos", "limit_remaining_nanos", "limit_reset", "tier", "byok_hint", "active_key", "synced_at", "created_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    KEY_HINT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_NANOS_FIELD_NUMBER: _ClassVar[int]
    USAGE_NANOS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_REMAINING_NANOS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_RESET_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    BYOK_HINT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_KEY_FIELD_NUMBER: _ClassVar[int]
    SYNCED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    key_hash: str
    key_hint: str
    limit_nanos: int
    usage_nanos: int
    limit_remaining_nanos: int
    limit_reset: str
    tier: str
    byok_hint: str
    active_key: KeySource
    synced_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., key_hash: _Optional[str] = ..., key_hint: _Optional[str] = ..., limit_nanos: _Optional[int] = ..., usage_nanos: _Optional[int] = ..., limit_remaining_nanos: _Optional[int] = ..., limit_reset: _Optional[str] = ..., tier: _Optional[str] = ..., byok_hint: _Optional[str] = ..., active_key: _Optional[_Union[KeySource, str]] = ..., synced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CreateAccountResponse(_message.Message):
    __slots__ = ("account", "created")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    account: Account
    created: bool
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class SyncBalanceRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class SyncBalanceResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class SetByokKeyRequest(_message.Message):
    __slots__ = ("api_key", "request_id")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    request_id: str
    def __init__(self, api_key: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetByokKeyResponse(_message.Message):
    __slots__ = ("byok_hint", "account")
    BYOK_HINT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    byok_hint: str
    account: Account
    def __init__(self, byok_hint: _Optional[str] = ..., account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class DeleteByokKeyRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class DeleteByokKeyResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("model_id", "name", "context_length", "free", "provider_prompt_nanos_per_mtok", "provider_completion_nanos_per_mtok", "provider_request_nanos", "prompt_nanos_per_mtok", "completion_nanos_per_mtok", "request_nanos", "free_fee_per_1k_tokens_nanos")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_PROMPT_NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_COMPLETION_NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REQUEST_NANOS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_NANOS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_NANOS_FIELD_NUMBER: _ClassVar[int]
    FREE_FEE_PER_1K_TOKENS_NANOS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    name: str
    context_length: int
    free: bool
    provider_prompt_nanos_per_mtok: str
    provider_completion_nanos_per_mtok: str
    provider_request_nanos: str
    prompt_nanos_per_mtok: str
    completion_nanos_per_mtok: str
    request_nanos: str
    free_fee_per_1k_tokens_nanos: int
    def __init__(self, model_id: _Optional[str] = ..., name: _Optional[str] = ..., context_length: _Optional[int] = ..., free: _Optional[bool] = ..., provider_prompt_nanos_per_mtok: _Optional[str] = ..., provider_completion_nanos_per_mtok: _Optional[str] = ..., provider_request_nanos: _Optional[str] = ..., prompt_nanos_per_mtok: _Optional[str] = ..., completion_nanos_per_mtok: _Optional[str] = ..., request_nanos: _Optional[str] = ..., free_fee_per_1k_tokens_nanos: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("tier", "free_only", "byok")
    TIER_FIELD_NUMBER: _ClassVar[int]
    FREE_ONLY_FIELD_NUMBER: _ClassVar[int]
    BYOK_FIELD_NUMBER: _ClassVar[int]
    tier: str
    free_only: bool
    byok: bool
    def __init__(self, tier: _Optional[str] = ..., free_only: _Optional[bool] = ..., byok: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "tier", "price_version")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    tier: str
    price_version: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., tier: _Optional[str] = ..., price_version: _Optional[str] = ...) -> None: ...

class QuotePriceRequest(_message.Message):
    __slots__ = ("tier", "service", "model", "input_tokens", "output_tokens", "quantity", "byok")
    TIER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BYOK_FIELD_NUMBER: _ClassVar[int]
    tier: str
    service: _service_kind_pb2.ServiceKind
    model: str
    input_tokens: int
    output_tokens: int
    quantity: int
    byok: bool
    def __init__(self, tier: _Optional[str] = ..., service: _Optional[_Union[_service_kind_pb2.ServiceKind, str]] = ..., model: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., quantity: _Optional[int] = ..., byok: _Optional[bool] = ...) -> None: ...

class QuotePriceResponse(_message.Message):
    __slots__ = ("provider_cost_nanos", "platform_fee_nanos", "total_nanos", "price_version", "free_model")
    PROVIDER_COST_NANOS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FEE_NANOS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_NANOS_FIELD_NUMBER: _ClassVar[int]
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    FREE_MODEL_FIELD_NUMBER: _ClassVar[int]
    provider_cost_nanos: int
    platform_fee_nanos: int
    total_nanos: int
    price_version: str
    free_model: bool
    def __init__(self, provider_cost_nanos: _Optional[int] = ..., platform_fee_nanos: _Optional[int] = ..., total_nanos: _Optional[int] = ..., price_version: _Optional[str] = ..., free_model: _Optional[bool] = ...) -> None: ...

class QuotePricesRequest(_message.Message):
    __slots__ = ("quotes",)
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    quotes: _containers.RepeatedCompositeFieldContainer[QuotePriceRequest]
    def __init__(self, quotes: _Optional[_Iterable[_Union[QuotePriceRequest, _Mapping]]] = ...) -> None: ...

class QuotePricesResponse(_message.Message):
    __slots__ = ("quotes",)
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    quotes: _containers.RepeatedCompositeFieldContainer[QuotePriceResponse]
    def __init__(self, quotes: _Optional[_Iterable[_Union[QuotePriceResponse, _Mapping]]] = ...) -> None: ...

class GetProviderKeyRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetProviderKeyResponse(_message.Message):
    __slots__ = ("api_key", "source")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    source: KeySource
    def __init__(self, api_key: _Optional[str] = ..., source: _Optional[_Union[KeySource, str]] = ...) -> None: ...

class RotateEncryptionKeysRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class RotateEncryptionKeysResponse(_message.Message):
    __slots__ = ("rotated_count",)
    ROTATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    rotated_count: int
    def __init__(self, rotated_count: _Optional[int] = ...) -> None: ...

class SyncModelsRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class SyncModelsResponse(_message.Message):
    __slots__ = ("model_count", "catalog_version", "changed")
    MODEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    model_count: int
    catalog_version: int
    changed: bool
    def __init__(self, model_count: _Optional[int] = ..., catalog_version: _Optional[int] = ..., changed: _Optional[bool] = ...) -> None: ...

class TierRate(_message.Message):
    __slots__ = ("tier", "markup_bps", "byok_markup_bps", "free_model_fee_per_1k_tokens_nanos")
    TIER_FIELD_NUMBER: _ClassVar[int]
    MARKUP_BPS_FIELD_NUMBER: _ClassVar[int]
    BYOK_MARKUP_BPS_FIELD_NUMBER: _ClassVar[int]
    FREE_MODEL_FEE_PER_1K_TOKENS_NANOS_FIELD_NUMBER: _ClassVar[int]
    tier: str
    markup_bps: int
    byok_markup_bps: int
    free_model_fee_per_1k_tokens_nanos: int
    def __init__(self, tier: _Optional[str] = ..., markup_bps: _Optional[int] = ..., byok_markup_bps: _Optional[int] = ..., free_model_fee_per_1k_tokens_nanos: _Optional[int] = ...) -> None: ...

class UnitPrice(_message.Message):
    __slots__ = ("service", "price_nanos", "quantity_per_unit", "unit")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PRICE_NANOS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_PER_UNIT_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    service: _service_kind_pb2.ServiceKind
    price_nanos: int
    quantity_per_unit: int
    unit: str
    def __init__(self, service: _Optional[_Union[_service_kind_pb2.ServiceKind, str]] = ..., price_nanos: _Optional[int] = ..., quantity_per_unit: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class RateCard(_message.Message):
    __slots__ = ("version", "tiers", "unit_prices", "created_at", "created_by")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    version: int
    tiers: _containers.RepeatedCompositeFieldContainer[TierRate]
    unit_prices: _containers.RepeatedCompositeFieldContainer[UnitPrice]
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    def __init__(self, version: _Optional[int] = ..., tiers: _Optional[_Iterable[_Union[TierRate, _Mapping]]] = ..., unit_prices: _Optional[_Iterable[_Union[UnitPrice, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ...) -> None: ...

class GetRateCardRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRateCardResponse(_message.Message):
    __slots__ = ("rate_card",)
    RATE_CARD_FIELD_NUMBER: _ClassVar[int]
    rate_card: RateCard
    def __init__(self, rate_card: _Optional[_Union[RateCard, _Mapping]] = ...) -> None: ...

class UpdateRateCardRequest(_message.Message):
    __slots__ = ("tiers", "unit_prices", "request_id")
    TIERS_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tiers: _containers.RepeatedCompositeFieldContainer[TierRate]
    unit_prices: _containers.RepeatedCompositeFieldContainer[UnitPrice]
    request_id: str
    def __init__(self, tiers: _Optional[_Iterable[_Union[TierRate, _Mapping]]] = ..., unit_prices: _Optional[_Iterable[_Union[UnitPrice, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateRateCardResponse(_message.Message):
    __slots__ = ("rate_card",)
    RATE_CARD_FIELD_NUMBER: _ClassVar[int]
    rate_card: RateCard
    def __init__(self, rate_card: _Optional[_Union[RateCard, _Mapping]] = ...) -> None: ...

class GetPriceBookRequest(_message.Message):
    __slots__ = ("known_version", "refresh_catalog")
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    REFRESH_CATALOG_FIELD_NUMBER: _ClassVar[int]
    known_version: str
    refresh_catalog: bool
    def __init__(self, known_version: _Optional[str] = ..., refresh_catalog: _Optional[bool] = ...) -> None: ...

class PriceBookModel(_message.Message):
    __slots__ = ("model_id", "prompt_usd", "completion_usd", "request_usd")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_USD_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_USD_FIELD_NUMBER: _ClassVar[int]
    REQUEST_USD_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    prompt_usd: str
    completion_usd: str
    request_usd: str
    def __init__(self, model_id: _Optional[str] = ..., prompt_usd: _Optional[str] = ..., completion_usd: _Optional[str] = ..., request_usd: _Optional[str] = ...) -> None: ...

class GetPriceBookResponse(_message.Message):
    __slots__ = ("price_version", "unchanged", "rate_card", "models", "byok_tiers")
    PRICE_VERSION_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    RATE_CARD_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    BYOK_TIERS_FIELD_NUMBER: _ClassVar[int]
    price_version: str
    unchanged: bool
    rate_card: RateCard
    models: _containers.RepeatedCompositeFieldContainer[PriceBookModel]
    byok_tiers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, price_version: _Optional[str] = ..., unchanged: _Optional[bool] = ..., rate_card: _Optional[_Union[RateCard, _Mapping]] = ..., models: _Optional[_Iterable[_Union[PriceBookModel, _Mapping]]] = ..., byok_tiers: _Optional[_Iterable[str]] = ...) -> None: ...
