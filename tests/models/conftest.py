"""Fixtures of the model registry's tests: the real S3 server (tests/s3_server.py)."""

from tests.s3_server import private_seaweedfs, s3_bucket, seaweedfs

__all__ = ["private_seaweedfs", "s3_bucket", "seaweedfs"]
