"""Generates the Python code for protos/kino/v1 into gen/.

One function does the generation so that `make protos` and the staleness test produce the
same bytes: the test generates into a temporary directory and compares with what is committed.

    python -m services.common.protogen gen        # write gen/kino/v1/*_pb2*.py
    python -m services.common.protogen check      # exit 1 if gen/ is stale
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "protos"
GEN_ROOT = REPO_ROOT / "gen"
PACKAGE_DIR = Path("kino") / "v1"


def _include_dirs() -> list[str]:
    """protos/, protoc's well-known types, and googleapis' google/rpc protos."""
    import google.rpc  # googleapis-common-protos ships status.proto beside its modules

    well_known = resources.files("grpc_tools") / "_proto"
    googleapis = Path(google.rpc.__path__[0]).parent.parent
    return [str(PROTO_ROOT), str(well_known), str(googleapis)]


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Runs protoc for every kino.v1 proto; returns the files written under out_root."""
    from grpc_tools import protoc

    package_out = out_root / PACKAGE_DIR
    package_out.mkdir(parents=True, exist_ok=True)
    for init in (out_root / "kino" / "__init__.py", package_out / "__init__.py"):
        init.write_text('"""Generated from protos/ by `make protos`. Do not edit."""\n')
    args = ["protoc", *(f"-I{d}" for d in _include_dirs())]
    args += [f"--python_out={out_root}", f"--pyi_out={out_root}", f"--grpc_python_out={out_root}"]
    args += [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: see the messages above")
    return sorted(p for p in package_out.rglob("*") if p.is_file())


def stale_files() -> list[str]:
    """Names of generated files that differ from a fresh generation (missing or extra ones too)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.relative_to(tmp).as_posix(): p for p in generate(Path(tmp))}
        committed = {
            p.relative_to(GEN_ROOT).as_posix(): p
            for p in (GEN_ROOT / PACKAGE_DIR).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }
        differing = [
            n for n in fresh if n not in committed or not filecmp.cmp(fresh[n], committed[n], shallow=False)
        ]
        extra = [n for n in committed if n not in fresh]
        return sorted(differing + extra)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "gen"
    if command == "gen":
        for path in generate(GEN_ROOT):
            print(path.relative_to(REPO_ROOT))
        return 0
    if command == "check":
        stale = stale_files()
        for name in stale:
            print(f"stale: gen/{name}")
        return 1 if stale else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
