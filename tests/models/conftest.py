"""Fixtures of the model registry's tests: the real S3 server (tests/s3_server.py), and a
folder for a test's own PostgreSQL and service."""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3_server import private_seaweedfs, s3_bucket, seaweedfs

__all__ = ["private_seaweedfs", "rig_dir", "s3_bucket", "seaweedfs"]


@pytest.fixture
def rig_dir() -> Iterator[Path]:
    """A short path of its own (PostgreSQL's socket path must stay under 108 bytes, which
    pytest's tmp_path can exceed), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="mlplane-rig-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
