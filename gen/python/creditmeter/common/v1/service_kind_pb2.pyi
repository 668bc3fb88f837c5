from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ServiceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_KIND_UNSPECIFIED: _ClassVar[ServiceKind]
    SERVICE_KIND_LLM: _ClassVar[ServiceKind]
    SERVICE_KIND_TTS: _ClassVar[ServiceKind]
    SERVICE_KIND_STT: _ClassVar[ServiceKind]
    SERVICE_KIND_EMBEDDING: _ClassVar[ServiceKind]
    SERVICE_KIND_SEARCH: _ClassVar[ServiceKind]
    SERVICE_KIND_AGENT: _ClassVar[ServiceKind]
SERVICE_KIND_UNSPECIFIED: ServiceKind
SERVICE_KIND_LLM: ServiceKind
SERVICE_KIND_TTS: ServiceKind
SERVICE_KIND_STT: ServiceKind
SERVICE_KIND_EMBEDDING: ServiceKind
SERVICE_KIND_SEARCH: ServiceKind
SERVICE_KIND_AGENT: ServiceKind
