"""Generates the Python stubs and the descriptor set the gateway loads.

One command (``make protos``) writes everything under ``gen/``; ``--check``
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
    args = [
        "protoc",
        *(f"-I{d}" for d in _include_dirs()),
        f"--python_out={out / 'python'}",
        f"--pyi_out={out / 'python'}",
        f"--grpc_python_out={out / 'python'}",
        f"--descriptor_set_out={out / DESCRIPTOR}",
        "--include_imports",
        "--include_source_info",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Package markers so the generated tree imports as a regular package.
    for folder in (out / "python").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__":
            (folder / "__init__.py").touch()


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
        print(f"generated {GEN.relative_to(ROOT)}/python and {GEN.relative_to(ROOT)}/{DESCRIPTOR}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        diffs = _differences(Path(scratch), GEN)
    if diffs:
        print("generated code is stale; run `make protos` and commit:", *diffs, sep="\n  ")
        return 1
    print("generated code is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
