"""`buf lint` and `buf breaking` over the contract, and the baseline `buf breaking` compares against.

buf cannot compile protos/ by itself here: google/api and google/rpc come from
the pinned googleapis-common-protos package through protoc's include path (see
gen_protos.py), not from a vendored copy or the network. So buf checks the
image protoc already builds, ``gen/descriptors/creditmeter.pb`` (kept fresh by
``make protos-check``), restricted to our files with ``--path creditmeter``.

The baseline ``protos/buf.image.binpb`` is the last accepted contract (no
source info, so comment edits do not churn it):

- ``check`` (in ``make test``): lint; no breaking change against the baseline;
  the baseline is the current contract (a compatible change refreshes it with
  ``make protos``, so the next change is compared with this one).
- ``baseline`` (``make protos``): refresh the baseline when the change is
  compatible; leave it alone (and say so) when it is breaking.
- ``baseline --accept-breaking`` (``make protos-baseline``): accept a breaking
  change on purpose.
"""

from __future__ import annotations

import argparse
import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = Path(sys.executable).parent / "buf"
CONFIG = ROOT / "buf.yaml"
IMAGE = ROOT / "gen" / "descriptors" / "creditmeter.pb"
BASELINE = ROOT / "protos" / "buf.image.binpb"
OURS = ["--path", "creditmeter"]


def _buf(*args: str) -> int:
    return subprocess.run([str(BUF), *args, "--config", str(CONFIG)], cwd=ROOT, check=False).returncode


def _image(path: Path = IMAGE) -> str:
    return f"{path}#format=binpb"


def lint(image: Path = IMAGE) -> int:
    return _buf("lint", _image(image), *OURS)


def breaking(image: Path = IMAGE) -> int:
    return _buf("breaking", _image(image), *OURS, "--against", f"{BASELINE}#format=binpb")


def _build(out: Path) -> None:
    if _buf("build", _image(), *OURS, "--exclude-source-info", "-o", f"{out}#format=binpb") != 0:
        raise SystemExit("buf build failed")


def baseline_is_current() -> bool:
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "image.binpb"
        _build(fresh)
        return BASELINE.exists() and filecmp.cmp(fresh, BASELINE, shallow=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "baseline"])
    parser.add_argument("--accept-breaking", action="store_true", help="refresh the baseline even over a break")
    opts = parser.parse_args()
    if opts.command == "check":
        if lint() != 0:
            print("buf lint failed (STANDARD rules, buf.yaml)", file=sys.stderr)
            return 1
        if breaking() != 0:
            print(
                "breaking change against protos/buf.image.binpb; if intended, run `make protos-baseline`",
                file=sys.stderr,
            )
            return 1
        if not baseline_is_current():
            print("protos/buf.image.binpb is stale; run `make protos` and commit it", file=sys.stderr)
            return 1
        print("buf lint and buf breaking: ok")
        return 0
    if BASELINE.exists() and not opts.accept_breaking and breaking() != 0:
        print(
            "the contract change above is breaking: the baseline was kept. "
            "Run `make protos-baseline` to accept it on purpose.",
            file=sys.stderr,
        )
        return 0
    _build(BASELINE)
    print(f"baseline {BASELINE.relative_to(ROOT)} refreshed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
