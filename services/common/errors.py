"""Domain errors: a status code, a stable UPPER_SNAKE reason and a message (AIP-193).

Domain code raises :class:`DomainError`; it imports nothing from gRPC. The error
chain (services.common.grpcserver.HandlerChain) turns it into a gRPC status whose
``grpc-status-details-bin`` trailer carries ``google.rpc.Status`` with one
``ErrorInfo{reason, domain, metadata}``; the gateway renders that as JSON.
"""

from __future__ import annotations

from enum import Enum


class Code(Enum):
    """The gRPC status codes domain errors may use, by their gRPC names."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class DomainError(Exception):
    """An error a client can act on: a code, a stable UPPER_SNAKE reason and a message.

    Messages must never contain secrets; they are shown to callers.
    """

    code: Code = Code.INVALID_ARGUMENT
    domain: str = "creditmeter.dev"

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        code: Code | None = None,
        domain: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        if code is not None:
            self.code = code
        if domain is not None:
            self.domain = domain
        self.metadata = dict(metadata or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.name}, {self.reason}, {self.message!r})"


def invalid(reason: str, message: str, **metadata: str) -> DomainError:
    return DomainError(reason, message, code=Code.INVALID_ARGUMENT, metadata=metadata)


def not_found(reason: str, message: str, **metadata: str) -> DomainError:
    return DomainError(reason, message, code=Code.NOT_FOUND, metadata=metadata)


def precondition(reason: str, message: str, **metadata: str) -> DomainError:
    return DomainError(reason, message, code=Code.FAILED_PRECONDITION, metadata=metadata)


def already_exists(reason: str, message: str, **metadata: str) -> DomainError:
    return DomainError(reason, message, code=Code.ALREADY_EXISTS, metadata=metadata)
