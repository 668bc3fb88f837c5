"""Shared gRPC plumbing: health, outgoing calls with a service token and trace context, JSON logs."""

from __future__ import annotations

import json
import logging

import grpc
import pytest
from creditmeter.credits.v1 import credits_pb2 as pb
from creditmeter.credits.v1 import credits_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common.auth import StaticTokenSource
from services.common.grpcserver import ClientInterceptor
from services.common.telemetry import JsonFormatter
from services.credits.server import SERVICE_NAME, RunningServer
from tests.integration.conftest import USD, Credits


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_health_reports_serving(channel: grpc.aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE_NAME):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_outgoing_calls_carry_the_service_token_and_the_trace(
    credits_server: RunningServer, credits: Credits, spans: InMemorySpanExporter
) -> None:
    user = await credits.funded_user(2 * USD)
    interceptor = ClientInterceptor(StaticTokenSource(credits.service_token))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{credits_server.port}", interceptors=[interceptor]) as chan:
        stub = pb_grpc.CreditsServiceStub(chan)
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("metering.authorize") as parent:
            response = await stub.GetBalance(pb.GetBalanceRequest(user_id=user))
        assert response.balance_nanos == 2 * USD
    context = parent.get_span_context()
    server_spans = [
        s
        for s in spans.get_finished_spans()
        if s.name.endswith("/GetBalance") and s.kind == trace.SpanKind.SERVER and s.context.trace_id == context.trace_id
    ]
    assert len(server_spans) == 1
    assert server_spans[0].parent is not None and server_spans[0].parent.span_id == context.span_id
    assert server_spans[0].attributes["rpc.method"] == "GetBalance"


async def test_without_a_token_source_outgoing_calls_are_unauthenticated(credits_server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{credits_server.port}", interceptors=[ClientInterceptor(None)]
    ) as chan:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await pb_grpc.CreditsServiceStub(chan).GetBalance(pb.GetBalanceRequest(user_id="x"))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_log_lines_are_json_with_the_trace_id(spans: InMemorySpanExporter) -> None:
    formatter = JsonFormatter("credits")
    with trace.get_tracer("test").start_as_current_span("work") as span:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "charged %s", ("once",), None)
        record.user_id = "alice"
        line = json.loads(formatter.format(record))
    assert line["msg"] == "charged once" and line["service"] == "credits" and line["user_id"] == "alice"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"
