"""google.rpc.Status with one ErrorInfo, as carried in the grpc-status-details-bin trailer."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

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
