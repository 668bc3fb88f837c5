"""The authorization matrix: generated from the policies, current in docs/, and consistent with the routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.grpcserver import MethodPolicy
from tools import authz_matrix, gateway

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_matrix_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "authorization.md").read_text()
    assert committed == authz_matrix.render(), "run `make authz-matrix`"


def test_every_rpc_of_every_service_has_a_policy() -> None:
    for file, name, policies in authz_matrix.SERVICES:
        service = file.services_by_name[name]
        methods = {f"/{service.full_name}/{m.name}" for m in service.methods}
        assert methods == set(policies), f"{name}: policies and contract disagree"


def test_internal_rpcs_have_no_public_route() -> None:
    internal = []
    for file, name, policies in authz_matrix.SERVICES:
        for method in file.services_by_name[name].methods:
            policy = policies[f"/{file.services_by_name[name].full_name}/{method.name}"]
            if policy.internal:
                internal.append(method.name)
                assert authz_matrix.rest_route(method) == "", f"{method.name} is in-cluster only but has a REST route"
    # The two that must never leave the cluster: usage charges and decrypted keys.
    assert {"ChargeUsage", "GetProviderKey"} <= set(internal)


def test_the_gateway_routes_no_raw_grpc() -> None:
    template = gateway.TEMPLATE.read_text()
    assert "grpc: {}" not in template
    routes = template.split("routes:", 1)[1].split("local_reply_config", 1)[0]
    assert 'prefix: "/creditmeter.' not in routes and 'path: "/creditmeter.' not in routes


def test_the_blanket_service_role_grants_nothing() -> None:
    with pytest.raises(ValueError, match="service identities"):
        MethodPolicy.allow("admin", "service")
    with pytest.raises(ValueError, match="unknown caller"):
        MethodPolicy.allow("svc-typo")
    with pytest.raises(ValueError, match="not allowed at all"):
        MethodPolicy.allow("admin", limits={"user": "own"})


def test_only_the_openrouter_identity_may_read_decrypted_keys() -> None:
    from services.openrouter.service import POLICIES

    policy = POLICIES["/creditmeter.openrouter.v1.OpenRouterService/GetProviderKey"]
    assert policy.callers == {"svc-openrouter"} and not policy.public
