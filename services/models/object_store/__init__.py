"""Where ONNX files live: a local folder (the embedded default) or S3.

Both stores write through an `ObjectWriter` that is invisible until `commit`
(a temporary file renamed into place; an S3 multipart upload completed) and
leaves nothing behind on `abort`, so a failed upload never half-stores a file.

`protocol.py` holds what every store is (and the keys objects live under), `folder.py`
and `s3.py` the two stores, `s3_writer.py` the multipart writer S3 uploads go through.
"""

from __future__ import annotations

from services.common.settings import Settings
from services.models.object_store.folder import FolderStore
from services.models.object_store.protocol import (
    EVALUATION_SUFFIX,
    READ_CHUNK,
    ObjectStore,
    ObjectWriter,
    evaluation_key,
    object_key,
    store_unavailable,
)
from services.models.object_store.s3 import S3Store
from services.models.object_store.s3_writer import (
    PART_READ_BYTES,
    _S3Writer,
    _SpoolPart,
    store_checksum_refused,
)

__all__ = [
    "EVALUATION_SUFFIX",
    "PART_READ_BYTES",
    "READ_CHUNK",
    "FolderStore",
    "ObjectStore",
    "ObjectWriter",
    "S3Store",
    "_S3Writer",
    "_SpoolPart",
    "evaluation_key",
    "object_key",
    "open_store",
    "store_checksum_refused",
    "store_unavailable",
]


async def open_store(settings: Settings) -> ObjectStore:
    if settings.store == "s3":
        return await S3Store.open(settings)
    root = settings.object_store_dir
    root.mkdir(parents=True, exist_ok=True)
    return FolderStore(root)
