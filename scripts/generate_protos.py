"""Regenerate generated/ from protos/: the one codegen command (`make generate`).

Produces Python messages, gRPC stubs, their .pyi type stubs (mypy-protobuf) and
the descriptor set Envoy's transcoder loads. `--out DIR` writes elsewhere, which
is how the freshness test compares a fresh run with what is committed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("mlplane") / "v1"
DESCRIPTOR_NAME = "mlplane.pb"
EXTRA_DESCRIPTOR_FILES = ("google/rpc/status.proto", "google/rpc/error_details.proto")
# Vendored protovalidate rules (protos/buf/validate, release v1.2.2): our messages import
# them, so Python needs their module too. The protovalidate wheel validates with its own
# copy; this one only registers the descriptors the generated code refers to.
VALIDATE_PROTO = "buf/validate/validate.proto"
GENERATED_PACKAGES = ("mlplane", "buf")


def proto_files() -> list[str]:
    return sorted(
        p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto")
    )


def generate(out: Path) -> None:
    well_known = str(resources.files("grpc_tools") / "_proto")
    # The mypy-protobuf plugins live beside this interpreter, not necessarily on PATH.
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={staging}",
            f"--grpc_python_out={staging}",
            f"--mypy_out={staging}",
            f"--mypy_grpc_out={staging}",
            *proto_files(),
        ]
        validate_args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
            f"--python_out={staging}",
            f"--mypy_out={staging}",
            VALIDATE_PROTO,
        ]
        # The descriptor set also carries google.rpc's error types: Envoy needs
        # them to render an ErrorInfo inside a REST error body. Their Python
        # modules come from googleapis-common-protos, so they get no stubs here.
        descriptor_args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--descriptor_set_out={staging / DESCRIPTOR_NAME}",
            "--include_imports",
            *proto_files(),
            *EXTRA_DESCRIPTOR_FILES,
        ]
        for invocation in (args, validate_args, descriptor_args):
            if protoc.main(invocation) != 0:
                raise SystemExit("protoc failed")
        for package in (Path("mlplane"), PACKAGE_DIR, Path("buf"), Path("buf") / "validate"):
            (staging / package / "__init__.py").write_text("")
        for top in GENERATED_PACKAGES:
            (staging / top / "py.typed").write_text("")
        # Replace the whole tree so a deleted .proto leaves no stale module.
        if out.exists():
            for top in GENERATED_PACKAGES:
                shutil.rmtree(out / top, ignore_errors=True)
            (out / DESCRIPTOR_NAME).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        for top in GENERATED_PACKAGES:
            shutil.copytree(staging / top, out / top)
        shutil.copy2(staging / DESCRIPTOR_NAME, out / DESCRIPTOR_NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "generated")
    args = parser.parse_args(argv)
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
