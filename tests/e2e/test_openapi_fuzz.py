"""Property-based fuzzing of the REST surface with Schemathesis, from the OpenAPI document derived from the protos.

Schemathesis reads docs/openapi.yaml (the document the gateway serves), generates
valid and invalid requests for every operation (boundary values, wrong types,
missing and extra fields) and sends them through the real Envoy to the real
services. Checks: no 5xx, every status is one the document declares, the
content type is JSON, and every body matches its schema (200s the response
message, errors google.rpc.Status). Each run is bounded (a fixed seed, a few
examples per operation) so the whole test fits in about a minute of CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"

# (role, operations, phases, examples per operation): admins reach most routes; the service-only and
# user-only routes get their own, smaller runs so their handlers see generated input too.
USER_ROUTES = r"^/api/v1/(openrouter/(account|byok|create-account|sync-balance|quote)|coupons/(validate|redeem))"
RUNS = [
    ("admin", None, "coverage,fuzzing", 6),
    ("svc-platform", r"^/api/v1/(metering/|credits/(holds|deduct))", "fuzzing", 12),
    ("user", USER_ROUTES, "fuzzing", 12),
]


@pytest.fixture(scope="module")
def stack(module_stack: Stack) -> Stack:
    """This module's own stack: the background work its hostile traffic causes ends with the module."""
    return module_stack


@pytest.mark.parametrize(("role", "paths", "phases", "examples"), RUNS, ids=[r[0] for r in RUNS])
def test_schemathesis_finds_no_server_error_and_no_nonconforming_response(
    stack: Stack, tmp_path: Path, role: str, paths: str | None, phases: str, examples: int
) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(ROOT / "docs" / "openapi.yaml"),
        "--url",
        stack.url,
        "--header",
        f"Authorization: Bearer {stack.token(f'fuzz-{role}', role)}",
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--max-examples",
        str(examples),
        "--seed",
        "20261202",
        # One worker: Hypothesis' strategy descriptions are not thread-safe on Python 3.11.
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "30",
        "--warnings",
        "off",
        # The balance stream stays open by design (heartbeats, no end): a request timeout there
        # says nothing about the contract. Its refusals are covered by the browser tests.
        "--exclude-path-regex",
        "/balance/watch$",
    ]
    if paths:
        command += ["--include-path-regex", paths]
    # cwd: a scratch folder, so Hypothesis' example database and any report stay out of the repository.
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    assert "API Operations" in output and "Tested:" in output, output[-2000:]
