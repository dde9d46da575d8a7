"""The embedded default store: a folder. An upload is written to a temporary file in
`.incoming/` and renamed into place on commit (fsynced, file and directory)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from services.common.tasks import to_the_end
from services.models.local_files import LocalFile
from services.models.object_store.protocol import (
    READ_CHUNK,
    ObjectWriter,
    store_unavailable,
)


class _FolderWriter:
    def __init__(self, root: Path, key: str) -> None:
        self._final = root / key
        tmp = root / ".incoming" / f"{uuid.uuid4().hex}.part"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file = LocalFile(tmp)
        self._committed = False

    @property
    def local_path(self) -> Path:
        return self._file.path

    def write(self, pieces: Sequence[bytes]) -> None:
        self._file.write(pieces)

    async def written(self) -> None:
        return None

    def _commit_sync(self) -> None:
        with self._file.lock:
            fd = self._file.fd
            if fd is None:
                raise OSError(errno.EBADF, "the upload was aborted")
            os.fsync(fd)
            self._final.parent.mkdir(parents=True, exist_ok=True)
            # Renamed while still open, so still flock-ed: a replica's start sweep never
            # sees it in .incoming unlocked (it would take it for a crashed upload's).
            os.replace(self._file.path, self._final)
            self._committed = True
            self._file.close_locked()
            # The rename is durable only once the directory entry is on disk.
            directory = os.open(self._final.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    async def commit(self) -> None:
        try:
            await asyncio.to_thread(self._commit_sync)
        except OSError as exc:
            await self.abort()
            raise store_unavailable() from exc

    def _abort_sync(self) -> None:
        self._file.remove()  # after a write or commit still running in a thread
        # A commit cancelled while its thread finished: no row will name the file.
        if self._committed:
            self._final.unlink(missing_ok=True)
            self._committed = False

    async def release(self) -> None:
        return None  # the temporary file became the object

    async def abort(self) -> None:
        # In a thread: it waits for a write or commit still running in one; to its end even
        # if this await is cancelled (a queued to_thread job never runs when cancelled).
        await to_the_end(asyncio.to_thread(self._abort_sync))


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def writer(self, key: str) -> ObjectWriter:
        try:
            return _FolderWriter(self.root, key)
        except OSError as exc:
            raise store_unavailable() from exc

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(open, self.root / key, "rb")
        except OSError as exc:
            raise store_unavailable() from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread((self.root / key).unlink)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread((self.root / key).is_file)

    async def listing(self) -> AsyncIterator[tuple[str, datetime]]:
        for key, mtime in await asyncio.to_thread(self._listing_sync):
            yield key, datetime.fromtimestamp(mtime, UTC)

    def _listing_sync(self) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # .incoming: in flight
            for name in files:
                path = Path(folder, name)
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    found.append((path.relative_to(self.root).as_posix(), path.stat().st_mtime))
        return found

    async def close(self) -> None:
        return None
