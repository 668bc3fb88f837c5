"""google.rpc.Status with one ErrorInfo, as carried in the grpc-status-details-bin trailer."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from services.common.errors import Code, DomainError

DETAILS_KEY = "grpc-status-details-bin"


def status_details(code: grpc.StatusCode, reason: str, domain: str, message: str, metadata: dict[str, str]) -> bytes:
    """Serialises a google.rpc.Status carrying one ErrorInfo."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata)
    packed = any_pb2.Any()
    packed.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[packed])
    return bytes(status.SerializeToString())


def error_info_from(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """Reads the ErrorInfo out of a failed call's trailers (for clients and tests)."""
    trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None


def relay(error: grpc.aio.AioRpcError, domain: str) -> DomainError:
    """Another service's refusal, passed on with its code, reason and message (failures become UNAVAILABLE)."""
    info = error_info_from(error)
    name = error.code().name
    code = Code[name] if name in Code.__members__ else Code.UNAVAILABLE
    if code is Code.UNAVAILABLE or name in ("DEADLINE_EXCEEDED", "UNKNOWN", "UNIMPLEMENTED", "INTERNAL"):
        return DomainError(
            "UPSTREAM_UNAVAILABLE", "a service this call needs did not answer", code=Code.UNAVAILABLE, domain=domain
        )
    return DomainError(
        info.reason if info else name,
        error.details() or name,
        code=code,
        domain=info.domain if info else domain,
        metadata=dict(info.metadata) if info else {},
    )


def status_of(error: DomainError, domain: str) -> status_pb2.Status:
    """A domain error as the google.rpc.Status a failed call would carry (for per-item results of batch RPCs)."""
    return status_pb2.Status.FromString(
        status_details(
            grpc.StatusCode[error.code.name], error.reason, error.domain or domain, error.message, error.metadata
        )
    )


def error_of(status: status_pb2.Status, domain: str) -> DomainError:
    """A per-item google.rpc.Status of a batch answer back as the DomainError it stands for."""
    info = error_details_pb2.ErrorInfo()
    found = any(detail.Unpack(info) for detail in status.details)
    names = {c.value[0]: c.name for c in grpc.StatusCode}
    name = names.get(status.code, "UNKNOWN")
    code = Code[name] if name in Code.__members__ else Code.UNAVAILABLE
    return DomainError(
        info.reason if found else name,
        status.message or name,
        code=code,
        domain=info.domain if found else domain,
        metadata=dict(info.metadata) if found else {},
    )
