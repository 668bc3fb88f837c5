"""The contract checks in `make test` catch what they are there for: buf lint and buf breaking."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2

from tools import buf_check


def _contract() -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(buf_check.IMAGE.read_bytes())


def _file(image: descriptor_pb2.FileDescriptorSet, name: str) -> descriptor_pb2.FileDescriptorProto:
    return next(f for f in image.file if f.name == name)


def _write(image: descriptor_pb2.FileDescriptorSet, tmp_path: Path) -> Path:
    out = tmp_path / "image.pb"
    out.write_bytes(image.SerializeToString())
    return out


def test_the_committed_contract_passes_lint_and_breaking() -> None:
    assert buf_check.lint() == 0
    assert buf_check.breaking() == 0
    assert buf_check.baseline_is_current()


def test_lint_refuses_an_enum_value_without_its_type_prefix(tmp_path: Path) -> None:
    image = _contract()
    kinds = next(e for e in _file(image, "creditmeter/common/v1/service_kind.proto").enum_type)
    assert kinds.value[1].name == "SERVICE_KIND_LLM"
    kinds.value[1].name = "LLM"
    assert buf_check.lint(_write(image, tmp_path)) != 0


def test_breaking_refuses_a_removed_field(tmp_path: Path) -> None:
    image = _contract()
    request = next(
        m
        for m in _file(image, "creditmeter/openrouter/v1/openrouter.proto").message_type
        if m.name == "SetByokKeyRequest"
    )
    assert [f.name for f in request.field] == ["api_key", "request_id"]
    del request.field[1]
    assert buf_check.breaking(_write(image, tmp_path)) != 0
