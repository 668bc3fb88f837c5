"""gRPC plumbing every service shares: interceptors (telemetry, errors, auth), health, TLS, shutdown.

Interceptors wrap every handler kind — unary and streaming alike — with the
same code. Order, outermost first: telemetry (span per RPC, trace context from
metadata) → errors (domain and database errors to google.rpc.Status) → auth
(token → Principal, method policy) → validation (the request's ``buf.validate``
constraints, services.common.validation). A method without a policy is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.common.auth import (
    CALLERS,
    SERVICE_IDENTITIES,
    AuthError,
    Forbidden,
    JwtVerifier,
    Principal,
    TokenSource,
    bearer_from_metadata,
    current_principal,
)
from services.common.config import TlsSettings
from services.common.errors import Code, DomainError
from services.common.rpcstatus import DETAILS_KEY, status_details

log = logging.getLogger(__name__)

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIX = "/grpc.reflection."


#: Service identities that run inside the cluster. A method only they may call is internal:
#: it has no REST route and raw gRPC is not routed by the gateway (see docs/authorization.md).
IN_CLUSTER = ("svc-metering", "svc-coupons", "svc-openrouter")


@dataclass(frozen=True)
class MethodPolicy:
    """Who may call a method: anyone (``public``) or the named callers.

    Callers are ``user``, ``admin`` and service identities (``svc-metering``, …,
    see services.common.auth.SERVICE_IDENTITIES); the blanket ``service`` role
    names nobody. ``limits`` documents, per caller, the narrower condition the
    method itself enforces (e.g. users: their own account only); it is shown
    in the generated authorization matrix.
    """

    callers: frozenset[str]
    public: bool = False
    limits: tuple[tuple[str, str], ...] = ()

    @classmethod
    def allow(cls, *callers: str, limits: Mapping[str, str] | None = None) -> MethodPolicy:
        for caller in (*callers, *(limits or {})):
            if caller == "service":
                raise ValueError(
                    "the blanket 'service' role grants nothing: name the service identities that need this "
                    f"method ({', '.join(SERVICE_IDENTITIES)})"
                )
            if caller not in CALLERS:
                raise ValueError(f"unknown caller {caller!r}; callers are {', '.join(CALLERS)}")
        for caller in limits or {}:
            if caller not in callers:
                raise ValueError(f"a limit for {caller!r}, who is not allowed at all")
        return cls(callers=frozenset(callers), limits=tuple(sorted((limits or {}).items())))

    @classmethod
    def anyone(cls) -> MethodPolicy:
        return cls(callers=frozenset(), public=True)

    @property
    def internal(self) -> bool:
        """Only in-cluster services may call it: never routed through the public gateway."""
        return not self.public and bool(self.callers) and self.callers <= set(IN_CLUSTER)

    def limit_for(self, caller: str) -> str | None:
        return dict(self.limits).get(caller)


#: What an interceptor runs around a handler: entered before it, left after it (and its stream) ends.
Around = Callable[[grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]


def _unary_response(behaviour: Behaviour, around: Around) -> Behaviour:
    async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with around(context):
            return await behaviour(request, context)

    return run


def _stream_response(behaviour: Callable[..., Any], around: Around) -> Callable[..., AsyncIterator[Any]]:
    async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with around(context):
            result = behaviour(request, context)
            if hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:  # a handler that writes with context.write() and returns nothing
                await result

    return run


def _wrap(handler: grpc.RpcMethodHandler | None, around: Around) -> grpc.RpcMethodHandler | None:
    """The same handler with ``around`` run around it, whatever its kind (unary or streaming)."""
    if handler is None:
        return None
    codec = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_unary_response(handler.unary_unary, around), **codec)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_unary_response(handler.stream_unary, around), **codec)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_stream_response(handler.unary_stream, around), **codec)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(_stream_response(handler.stream_stream, around), **codec)
    return handler


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
        service_name, _, rpc = method.strip("/").partition("/")

        @contextlib.asynccontextmanager
        async def around(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            with tracer.start_as_current_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": service_name, "rpc.method": rpc},
            ) as span:
                try:
                    yield
                finally:
                    code = context.code()
                    if code is not None and code != grpc.StatusCode.OK:
                        span.set_attribute("rpc.grpc.status_code", code.value[0])
                        span.set_status(Status(StatusCode.ERROR, code.name))

        return _wrap(handler, around)


def _as_domain_error(exc: Exception, method: str) -> DomainError:
    """The client-facing error for anything a handler raised (internals are logged, never shown)."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, asyncpg.NumericValueOutOfRangeError):
        return DomainError("AMOUNT_OUT_OF_RANGE", "the amount would overflow a 64-bit balance")
    if isinstance(exc, (asyncpg.DataError, OverflowError)):
        # A value the database or the calendar cannot hold (a NUL byte, year 10000):
        # the request's fault, whatever check missed it. Logged so the gap gets a rule.
        log.warning("input out of range", extra={"rpc": method, "error": type(exc).__name__})
        return DomainError("INVALID_VALUE", "a value in the request is out of range or malformed")
    if isinstance(exc, (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)):
        return DomainError(
            "CONCURRENT_MODIFICATION", "the request conflicted with another; retry it", code=Code.ABORTED
        )
    if isinstance(exc, asyncpg.QueryCanceledError):
        # statement_timeout (DB_STATEMENT_TIMEOUT_MS) or a cancelled query.
        log.warning("database statement timed out", extra={"rpc": method})
        return DomainError(
            "DATABASE_TIMEOUT", "the database did not answer in time; retry later", code=Code.UNAVAILABLE
        )
    if isinstance(
        exc,
        (
            asyncpg.TooManyConnectionsError,
            asyncpg.PostgresConnectionError,
            asyncpg.AdminShutdownError,
            asyncpg.CannotConnectNowError,
            asyncpg.CrashShutdownError,
            OSError,
            TimeoutError,
        ),
    ):
        log.exception("database unavailable", extra={"rpc": method})
        return DomainError("DATABASE_UNAVAILABLE", "the database is unavailable; retry later", code=Code.UNAVAILABLE)
    log.exception("unhandled error", extra={"rpc": method})
    return DomainError("INTERNAL", "internal error", code=Code.INTERNAL)


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain and database errors to a gRPC status carrying ErrorInfo; hides internals."""

    def __init__(self, domain: str) -> None:
        self._domain = domain

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        domain = self._domain
        method = details.method

        @contextlib.asynccontextmanager
        async def around(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            try:
                yield
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # grpc's own abort() raises an exception we must let through.
                if type(exc).__name__ == "AbortError":
                    raise
                err = _as_domain_error(exc, method)
            error_domain = err.domain if err.domain != DomainError.domain else domain
            if err.code not in (Code.INTERNAL, Code.UNAVAILABLE):
                log.info("rpc refused", extra={"rpc": method, "reason": err.reason, "code": err.code.name})
            status = grpc.StatusCode[err.code.name]
            trailer = status_details(status, err.reason, error_domain, err.message, err.metadata)
            trailers: tuple[tuple[str, str | bytes], ...] = ((DETAILS_KEY, trailer),)
            if err.metadata.get("retry_after_seconds", "").isdigit():
                # Through the gateway this becomes the HTTP Retry-After header of the 429.
                trailers += (("retry-after", err.metadata["retry_after_seconds"]),)
            await context.abort(status, err.message, trailing_metadata=trailers)

        return _wrap(handler, around)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Verifies the bearer token and enforces each method's policy, for every handler kind.

    Methods missing from the policy table are refused: new RPCs are closed
    until someone decides who may call them.
    """

    def __init__(self, verifier: JwtVerifier, policies: Mapping[str, MethodPolicy]) -> None:
        self._verifier = verifier
        self._policies = dict(policies)

    async def authorize(self, method: str, metadata: Any) -> Principal | None:
        """The caller of ``method``, or the error that refuses them (None for anonymous public calls)."""
        policy = self._policies.get(method)
        if policy is None:
            raise Forbidden("METHOD_NOT_ALLOWED", "this method is not open to callers")
        try:
            token = bearer_from_metadata(metadata)
            if token is None:
                raise AuthError("TOKEN_MISSING", "a bearer token is required")
            who = await self._verifier.verify(token)
        except DomainError:
            if policy.public:
                return None  # a public method ignores credentials, as the gateway does
            raise
        if not policy.public and not (who.callers & policy.callers):
            raise Forbidden(
                "ROLE_NOT_ALLOWED",
                f"this method is open to: {', '.join(sorted(policy.callers))}",
            )
        return who

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        method = details.method
        handler = await continuation(details)
        if method.startswith(HEALTH_PREFIX) or method.startswith(REFLECTION_PREFIX):
            return handler
        metadata = details.invocation_metadata
        authorize = self.authorize

        @contextlib.asynccontextmanager
        async def around(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
            who = await authorize(method, metadata)
            reset = current_principal.set(who)
            try:
                yield
            finally:
                with contextlib.suppress(ValueError):  # a stream closed from another context
                    current_principal.reset(reset)

        return _wrap(handler, around)


def principal() -> Principal:
    """The authenticated caller of the current RPC (call only from non-public methods)."""
    who = current_principal.get()
    if who is None:
        raise AuthError("TOKEN_MISSING", "a bearer token is required")
    return who


async def _outgoing_metadata(call_details: Any, tokens: TokenSource | None) -> grpc.aio.ClientCallDetails:
    metadata = list(call_details.metadata or ())
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=otel_context.get_current())
    metadata.extend(carrier.items())
    if tokens is not None and not any(k == "authorization" for k, _ in metadata):
        metadata.append(("authorization", f"Bearer {await tokens.token()}"))
    return grpc.aio.ClientCallDetails(
        call_details.method,
        call_details.timeout,
        metadata,
        call_details.credentials,
        call_details.wait_for_ready,
    )


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Outgoing unary calls carry the service's bearer token and the current trace context."""

    def __init__(self, tokens: TokenSource | None) -> None:
        self._tokens = tokens

    async def intercept_unary_unary(self, continuation: Any, call_details: Any, request: Any) -> Any:
        return await continuation(await _outgoing_metadata(call_details, self._tokens), request)


class StreamClientInterceptor(
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Outgoing streaming calls carry the same token and trace context as unary ones."""

    def __init__(self, tokens: TokenSource | None) -> None:
        self._tokens = tokens

    async def intercept_unary_stream(self, continuation: Any, call_details: Any, request: Any) -> Any:
        return await continuation(await _outgoing_metadata(call_details, self._tokens), request)

    async def intercept_stream_unary(self, continuation: Any, call_details: Any, request_iterator: Any) -> Any:
        return await continuation(await _outgoing_metadata(call_details, self._tokens), request_iterator)

    async def intercept_stream_stream(self, continuation: Any, call_details: Any, request_iterator: Any) -> Any:
        return await continuation(await _outgoing_metadata(call_details, self._tokens), request_iterator)


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials | None:
    """TLS for a listening port; with a CA the client must present a certificate it signed (mTLS)."""
    if not tls.enabled:
        return None
    assert tls.cert_file is not None and tls.key_file is not None
    pair = (Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())
    ca = Path(tls.ca_file).read_bytes() if tls.ca_file else None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials | None:
    """TLS for outgoing channels: the CA to trust, and this service's certificate as the client's."""
    if not tls.ca_file:
        return None
    key = Path(tls.key_file).read_bytes() if tls.key_file else None
    cert = Path(tls.cert_file).read_bytes() if tls.cert_file else None
    return grpc.ssl_channel_credentials(Path(tls.ca_file).read_bytes(), private_key=key, certificate_chain=cert)


def connect(address: str, tokens: TokenSource | None, tls: TlsSettings | None = None) -> grpc.aio.Channel:
    """A channel to another service whose calls carry this service's token and trace context (TLS by config)."""
    interceptors: list[Any] = [ClientInterceptor(tokens), StreamClientInterceptor(tokens)]
    credentials = channel_credentials(tls) if tls is not None else None
    # Reconnect within seconds of the other side coming back (gRPC's default backoff grows to 120 s, so
    # after a long outage work queued for that service — e.g. metering's outbox — would wait minutes).
    options: list[tuple[str, Any]] = [
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    if tls is not None and tls.server_name_override:
        options.append(("grpc.ssl_target_name_override", tls.server_name_override))
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)


def listen(server: grpc.aio.Server, address: str, tls: TlsSettings) -> int:
    """Binds the server's port, with TLS when configured; returns the port (0 when binding failed)."""
    credentials = server_credentials(tls)
    if credentials is None:
        return int(server.add_insecure_port(address))
    return int(server.add_secure_port(address, credentials))


def build_server(
    service: str,
    domain: str,
    verifier: JwtVerifier,
    policies: Mapping[str, MethodPolicy],
    extra_interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A grpc.aio server with the standard interceptors and the health service registered."""
    # Imported here: the validation module builds on this one's constants.
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
