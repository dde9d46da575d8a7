"""What every object store is: the `ObjectStore` and `ObjectWriter` protocols, the keys
objects are stored under, and the error a caller sees when the store fails."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from services.common.errors import ServiceError, unavailable

READ_CHUNK = 1024 * 1024

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def object_key(tenant: str, model_id: str, version: int) -> str:
    """`{tenant}/{model_id}/{version}.onnx`, refusing anything that could escape a prefix."""
    for part in (tenant, model_id):
        if not _SEGMENT.match(part) or ".." in part:
            raise ValueError(f"unsafe key segment {part!r}")
    if version < 1:
        raise ValueError("version must be positive")
    return f"{tenant}/{model_id}/{version}.onnx"


EVALUATION_SUFFIX = ".evaluation.parquet"


def evaluation_key(model_key: str) -> str:
    """Where the evaluation set uploaded with the model at `model_key` is stored:
    `{tenant}/{model_id}/{slot}.evaluation.parquet`, beside it."""
    if not model_key.endswith(".onnx"):
        raise ValueError(f"not a model key: {model_key!r}")
    return model_key.removesuffix(".onnx") + EVALUATION_SUFFIX


def store_unavailable() -> ServiceError:
    return unavailable(
        "OBJECT_STORE_UNAVAILABLE", "the model store is unavailable; nothing was stored"
    )


class ObjectWriter(Protocol):
    """Bytes go to a local file first (`write`, blocking, from a worker thread),
    then to the store (`written`, on the event loop). Nothing is visible in
    the store before `commit`. Then exactly one of: `release` once the version
    row has committed (the local file is let go), or `abort`, before or after
    `commit`, which leaves nothing, locally or remotely."""

    @property
    def local_path(self) -> Path:
        """The local file holding every byte written so far (validation reads it)."""

    def write(self, pieces: Sequence[bytes]) -> None:
        """Append the pieces to the local file. Blocking: call it off the event loop."""

    async def written(self) -> None:
        """After `write`: send what is complete; waits while the store is behind."""

    async def commit(self) -> None: ...
    async def release(self) -> None: ...
    async def abort(self) -> None: ...


class ObjectStore(Protocol):
    async def writer(self, key: str) -> ObjectWriter: ...
    def read(self, key: str) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    def listing(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every stored object's key and last-modified time (UTC); not uploads in flight."""

    async def close(self) -> None: ...
