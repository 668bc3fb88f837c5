"""gRPC plumbing every service shares: interceptors (telemetry, errors, auth), health, shutdown.

Interceptors wrap each unary handler's behaviour. Order, outermost first:
telemetry (span per RPC, trace context from metadata) → errors (domain and
database errors to google.rpc.Status) → auth (token → Principal, role policy)
→ validation (the request's ``buf.validate`` constraints, services.common.validation).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.common.auth import (
    AuthError,
    Forbidden,
    JwtVerifier,
    Principal,
    TokenSource,
    bearer_from_metadata,
    current_principal,
)
from services.common.errors import Code, DomainError
from services.common.rpcstatus import DETAILS_KEY, status_details

log = logging.getLogger(__name__)

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."


@dataclass(frozen=True)
class MethodPolicy:
    """Who may call a method: anyone (``public``) or holders of one of ``roles``."""

    roles: frozenset[str]
    public: bool = False

    @classmethod
    def allow(cls, *roles: str) -> MethodPolicy:
        return cls(roles=frozenset(roles))

    @classmethod
    def anyone(cls) -> MethodPolicy:
        return cls(roles=frozenset(), public=True)


def _wrap(handler: grpc.RpcMethodHandler, wrapper: Callable[[Behaviour], Behaviour]) -> grpc.RpcMethodHandler:
    if handler is None or handler.unary_unary is None:
        return handler  # streaming handlers are wrapped when a service first needs them
    return grpc.unary_unary_rpc_method_handler(
        wrapper(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class _MetadataGetter:
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


class TelemetryInterceptor(grpc.aio.ServerInterceptor):
    """One SERVER span per RPC, continuing the caller's trace from `traceparent`."""

    def __init__(self, service: str) -> None:
        self._tracer = trace.get_tracer(f"creditmeter.{service}")

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = details.method
        carrier = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        parent = propagate.extract(carrier, getter=_MetadataGetter())  # type: ignore[arg-type]
        tracer = self._tracer

        def wrapper(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                service_name, _, rpc = method.strip("/").partition("/")
                with tracer.start_as_current_span(
                    method,
                    context=parent,
                    kind=SpanKind.SERVER,
                    attributes={
                        "rpc.system": "grpc",
                        "rpc.service": service_name,
                        "rpc.method": rpc,
                    },
                ) as span:
                    try:
                        return await behaviour(request, context)
                    finally:
                        code = context.code()
                        if code is not None and code != grpc.StatusCode.OK:
                            span.set_attribute("rpc.grpc.status_code", code.value[0])
                            span.set_status(Status(StatusCode.ERROR, code.name))

            return run

        return _wrap(handler, wrapper)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain and database errors to a gRPC status carrying ErrorInfo; hides internals."""

    def __init__(self, domain: str) -> None:
        self._domain = domain

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        domain = self._domain
        method = details.method

        def wrapper(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await behaviour(request, context)
                except DomainError as error:
                    err = error
                except asyncpg.NumericValueOutOfRangeError:
                    err = DomainError("AMOUNT_OUT_OF_RANGE", "the amount would overflow a 64-bit balance")
                except (asyncpg.DataError, OverflowError) as exc:
                    # A value the database or the calendar cannot hold (a NUL byte, year 10000):
                    # the request's fault, whatever check missed it. Logged so the gap gets a rule.
                    log.warning("input out of range", extra={"rpc": method, "error": type(exc).__name__})
                    err = DomainError("INVALID_VALUE", "a value in the request is out of range or malformed")
                except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
                    err = DomainError(
                        "CONCURRENT_MODIFICATION",
                        "the request conflicted with another; retry it",
                        code=Code.ABORTED,
                    )
                except (
                    asyncpg.TooManyConnectionsError,
                    asyncpg.PostgresConnectionError,
                    OSError,
                    TimeoutError,
                ):
                    log.exception("database unavailable", extra={"rpc": method})
                    err = DomainError(
                        "DATABASE_UNAVAILABLE",
                        "the database is unavailable; retry later",
                        code=Code.UNAVAILABLE,
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # grpc's own abort() raises an exception we must let through.
                    if type(exc).__name__ == "AbortError":
                        raise
                    log.exception("unhandled error", extra={"rpc": method})
                    err = DomainError("INTERNAL", "internal error", code=Code.INTERNAL)
                error_domain = err.domain if err.domain != DomainError.domain else domain
                if err.code not in (Code.INTERNAL, Code.UNAVAILABLE):
                    log.info(
                        "rpc refused",
                        extra={"rpc": method, "reason": err.reason, "code": err.code.name},
                    )
                status = grpc.StatusCode[err.code.name]
                trailer = status_details(status, err.reason, error_domain, err.message, err.metadata)
                await context.abort(status, err.message, trailing_metadata=((DETAILS_KEY, trailer),))

            return run

        return _wrap(handler, wrapper)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Verifies the bearer token and enforces each method's role policy.

    Methods missing from the policy table are refused: new RPCs are closed
    until someone decides who may call them.
    """

    def __init__(self, verifier: JwtVerifier, policies: Mapping[str, MethodPolicy]) -> None:
        self._verifier = verifier
        self._policies = dict(policies)

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        handler = await continuation(details)
        if method.startswith(HEALTH_PREFIX) or method.startswith(REFLECTION_PREFIX):
            return handler
        policy = self._policies.get(method)
        verifier = self._verifier
        metadata = details.invocation_metadata

        def wrapper(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if policy is None:
                    raise Forbidden("METHOD_NOT_ALLOWED", "this method is not open to callers")
                principal: Principal | None = None
                try:
                    token = bearer_from_metadata(metadata)
                    if token is None:
                        raise AuthError("TOKEN_MISSING", "a bearer token is required")
                    principal = verifier.verify(token)
                except (AuthError, Forbidden):
                    if not policy.public:
                        raise
                if not policy.public:
                    assert principal is not None
                    if not (principal.roles & policy.roles):
                        raise Forbidden(
                            "ROLE_NOT_ALLOWED",
                            f"this method needs one of the roles: {', '.join(sorted(policy.roles))}",
                        )
                reset = current_principal.set(principal)
                try:
                    return await behaviour(request, context)
                finally:
                    current_principal.reset(reset)

            return run

        return _wrap(handler, wrapper)


def principal() -> Principal:
    """The authenticated caller of the current RPC (call only from non-public methods)."""
    who = current_principal.get()
    if who is None:
        raise AuthError("TOKEN_MISSING", "a bearer token is required")
    return who


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Outgoing calls carry the service's bearer token and the current trace context."""

    def __init__(self, tokens: TokenSource | None) -> None:
        self._tokens = tokens

    async def intercept_unary_unary(self, continuation: Any, call_details: Any, request: Any) -> Any:
        metadata = list(call_details.metadata or ())
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=otel_context.get_current())
        metadata.extend(carrier.items())
        if self._tokens is not None and not any(k == "authorization" for k, _ in metadata):
            metadata.append(("authorization", f"Bearer {self._tokens.token()}"))
        details = grpc.aio.ClientCallDetails(
            call_details.method,
            call_details.timeout,
            metadata,
            call_details.credentials,
            call_details.wait_for_ready,
        )
        return await continuation(details, request)


def connect(address: str, tokens: TokenSource | None) -> grpc.aio.Channel:
    """A channel to another service whose calls carry this service's token and trace context."""
    return grpc.aio.insecure_channel(address, interceptors=[ClientInterceptor(tokens)])


def build_server(
    service: str,
    domain: str,
    verifier: JwtVerifier,
    policies: Mapping[str, MethodPolicy],
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A grpc.aio server with the standard interceptors and the health service registered."""
    # Imported here: the validation module builds on this one's handler plumbing.
    from services.common.validation import ValidationInterceptor

    server = grpc.aio.server(
        interceptors=[
            TelemetryInterceptor(service),
            ErrorInterceptor(domain),
            AuthInterceptor(verifier, policies),
            ValidationInterceptor(),
            *extra_interceptors,
        ],
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            # Above the gateway's 60 KiB header limit, so a long (refused) query string gets
            # INVALID_ARGUMENT from validation rather than RESOURCE_EXHAUSTED without a reason.
            ("grpc.max_metadata_size", 128 * 1024),
            ("grpc.absolute_max_metadata_size", 128 * 1024),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server, health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer, service_names: Sequence[str], serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", *service_names):
        await health_servicer.set(name, status)
