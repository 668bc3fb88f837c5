"""Generates the Python stubs and the descriptor set the gateway loads.

One command (``make protos``) writes everything under ``gen/`` and the REST
API's OpenAPI document (docs/openapi.yaml, tools/openapi.py); ``--check``
regenerates into a scratch folder and fails when the committed output is stale.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"
DESCRIPTOR = "descriptors/creditmeter.pb"
VALIDATE_PROTO = "buf/validate/validate.proto"
OPENAPI = ROOT / "docs" / "openapi.yaml"
STRICT_JSON = "gateway/strict_json.lua"


def _validate_descriptor_set(folder: Path) -> Path:
    """buf/validate/validate.proto as a FileDescriptorSet, taken from the pinned protovalidate package.

    The package ships the compiled descriptor of the rules it enforces, not the
    .proto source; protoc reads it through ``--descriptor_set_in``, so the
    annotations in protos/ are always checked against exactly the rules the
    runtime validator knows (the same way google/api comes from the pinned
    googleapis-common-protos package).
    """
    from google.protobuf import descriptor_pb2
    from protovalidate._gen.buf.validate import validate_pb

    fds = descriptor_pb2.FileDescriptorSet()
    fds.file.add().MergeFromString(validate_pb.desc().proto.to_binary())
    path = folder / "buf-validate.pb"
    path.write_bytes(fds.SerializeToString(deterministic=True))
    return path


def _include_dirs() -> list[Path]:
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # googleapis-common-protos installs google/api/*.proto and google/rpc/*.proto
    # into site-packages next to their generated modules.
    import google.api  # type: ignore[import-untyped]

    googleapis = Path(next(iter(google.api.__path__))).parent.parent
    return [PROTOS, well_known, googleapis]


def generate(out: Path) -> None:
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    if not sources:
        raise SystemExit("no .proto files under protos/")
    (out / "python").mkdir(parents=True, exist_ok=True)
    (out / "descriptors").mkdir(parents=True, exist_ok=True)
    scratch = tempfile.TemporaryDirectory()
    args = [
        "protoc",
        *(f"-I{d}" for d in _include_dirs()),
        f"--descriptor_set_in={_validate_descriptor_set(Path(scratch.name))}",
        f"--python_out={out / 'python'}",
        f"--pyi_out={out / 'python'}",
        f"--grpc_python_out={out / 'python'}",
        f"--descriptor_set_out={out / DESCRIPTOR}",
        "--include_imports",
        "--include_source_info",
        *sources,
        # Generated too, so the stubs' `import buf.validate.validate_pb2` resolves.
        VALIDATE_PROTO,
    ]
    try:
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
    finally:
        scratch.cleanup()
    # The gateway's strict JSON check, with the field tables of these very descriptors.
    (out / "gateway").mkdir(parents=True, exist_ok=True)
    (out / STRICT_JSON).write_text(_strict_json(out / DESCRIPTOR))
    # Package markers so the generated tree imports as a regular package.
    for folder in (out / "python").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__" and folder.name != "gateway":
            (folder / "__init__.py").touch()


def _strict_json(descriptor_set: Path) -> str:
    from tools import openapi

    template = (ROOT / "gateway" / "strict_json.lua").read_text()
    return template.replace("--GENERATED-TABLES--", openapi.strict_json_tables(descriptor_set))


def _openapi(descriptor_set: Path) -> str:
    # Imported late: it needs the stubs generated a moment ago (buf.validate) on the path.
    from tools import openapi

    return openapi.render(descriptor_set)


def _differences(a: Path, b: Path) -> list[str]:
    found: list[str] = []
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    for rel in sorted(files_a ^ files_b):
        found.append(f"only in one tree: {rel}")
    for rel in sorted(files_a & files_b):
        if not filecmp.cmp(a / rel, b / rel, shallow=False):
            found.append(f"differs: {rel}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if gen/ is stale")
    opts = parser.parse_args()
    if not opts.check:
        generate(GEN)
        OPENAPI.write_text(_openapi(GEN / DESCRIPTOR))
        print(f"generated {GEN.relative_to(ROOT)}/python, {GEN.relative_to(ROOT)}/{DESCRIPTOR}")
        print(f"generated {OPENAPI.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        diffs = _differences(Path(scratch), GEN)
        if not OPENAPI.is_file() or OPENAPI.read_text() != _openapi(Path(scratch) / DESCRIPTOR):
            diffs.append(f"differs: {OPENAPI.relative_to(ROOT)}")
    if diffs:
        print("generated code is stale; run `make protos` and commit:", *diffs, sep="\n  ")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
