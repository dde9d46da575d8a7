"""An upload's local file, and the spool files S3 uploads reuse.

Every upload is written to a local file as it arrives: the folder store's
temporary file (renamed into place on commit) or S3's spool (validation reads
it, parts are sent from it).

Why S3 spools are reused: writing a gigabyte into a *new* file costs the kernel
fresh page-cache pages, and on a VM that hands freed memory back to its host
(virtio-balloon free page reporting) every such page faults in the host as well;
overwriting a file whose pages are still cached costs a fraction of that
(measured: bench/README.md, "What changed, and why it was the spool's memory").
So once an S3 upload's version is recorded, its spool is kept for the next
upload to overwrite, at most `keep` of them (`MLPLANE_UPLOAD_SPOOL_KEEP`; 0
deletes every spool; the folder store's files become the objects). A kept spool
is not cut to its last upload's size, so its pages stay for the next large
upload, and the largest idle spool is taken first. Every reader stops where its
own upload ends (validation is told the size, parts are ranges of what was
written). An idle spool holds earlier uploads' bytes until it is overwritten,
the store closes or the next process starts; a failed upload's spool is always
deleted.

A process that dies mid-upload (kill -9, a crash, the machine going down) cannot
delete its files: `sweep_leftovers` removes them when the service starts next. An
upload's file is `flock`ed for as long as it is open, so a sweep by one process
never takes the file of an upload still running in another sharing the folder
(replicas on one state folder); the kernel drops the lock when its process dies.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

# os.writev takes at most IOV_MAX (1024 on Linux) buffers a call.
IOV_BATCH = 512

SPOOL_SUFFIX = ".onnx"
IDLE_DIR = "idle"
# Validation writes a small skeleton of the model beside the upload's file.
SKELETON_SUFFIX = ".skeleton.onnx"

log = logging.getLogger("mlplane.models.local_files")


def write_all(fd: int, pieces: Sequence[bytes]) -> int:
    """Write the pieces at the descriptor's offset with as few system calls as it
    takes, nothing joined; return how many bytes that was."""
    total = 0
    for start in range(0, len(pieces), IOV_BATCH):
        batch = pieces[start : start + IOV_BATCH]
        written = os.writev(fd, batch)
        # A regular file takes it all unless the disk fills: finish a short write.
        for piece in batch:
            total += len(piece)
            if written >= len(piece):
                written -= len(piece)
                continue
            view = memoryview(piece)[written:]
            written = 0
            while view:
                count = os.write(fd, view)
                if count == 0:
                    raise OSError(errno.ENOSPC, "the disk took no more bytes")
                view = view[count:]
    return total


class LocalFile:
    """An upload's local file, written from worker threads.

    A cancelled upload's last write may still be running in its thread when the
    upload is aborted: closing the descriptor under it would let that write land
    in whatever file or socket gets the number next. The lock makes closing wait
    for a write in progress, and a write after the close fails.

    `reuse` opens an existing file and overwrites it from the start; `size` counts
    the bytes written, which is where this upload's data ends."""

    def __init__(self, path: Path, *, reuse: bool = False) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.size = 0
        self.fd: int | None = _open_locked(path, reuse=reuse)

    def write(self, pieces: Sequence[bytes]) -> None:
        with self.lock:
            if self.fd is None:
                raise OSError(errno.EBADF, "the upload's local file is already closed")
            self.size += write_all(self.fd, pieces)

    def close_locked(self) -> None:
        """Close the descriptor; the caller holds `lock`."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def remove(self) -> None:
        """Close and delete the file, after any write in progress. Blocking."""
        with self.lock:
            self.close_locked()
            self.path.unlink(missing_ok=True)


def _open_locked(path: Path, *, reuse: bool) -> int:
    """`path` opened for writing (created unless `reuse`) and `flock`ed: the lock, held
    until the descriptor closes, tells `sweep_leftovers` in any process that this upload
    is alive.

    Between the open and the lock the file is unlocked, and a replica starting just then
    may sweep it: the lock is then taken on a file that no longer has a name, and the
    upload's bytes would go nowhere (seen under a 16-client load while a replica
    restarted: validation found no file). So a file with no link after the lock is
    made again (a reused one is refused: the caller takes another)."""
    while True:
        flags = os.O_WRONLY if reuse else os.O_WRONLY | os.O_CREAT | os.O_EXCL
        fd = os.open(path, flags, 0o600)
        try:
            # A fresh file's only other holder is a sweep about to delete it: wait for it.
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if reuse else 0))
            if os.fstat(fd).st_nlink > 0:
                return fd
        except OSError:
            os.close(fd)
            if not reuse:
                path.unlink(missing_ok=True)
            raise
        os.close(fd)
        if reuse:
            raise FileNotFoundError(errno.ENOENT, "swept before it was locked", str(path))
        log.info("upload file %s was swept before it was locked; making it again", path)


def sweep_leftovers(directory: Path) -> list[Path]:
    """Delete the upload files in `directory` (not its subfolders) that no process has
    open, with their validation skeletons: what an upload in a process that died left
    behind. Returns what was removed. Blocking; for service start."""
    if not directory.is_dir():
        return []
    entries = [p for p in directory.iterdir() if p.is_file()]
    removed = [
        path
        for path in entries
        if not path.name.endswith(SKELETON_SUFFIX) and _remove_unless_locked(path)
    ]
    for skeleton in (p for p in entries if p.name.endswith(SKELETON_SUFFIX)):
        owner = skeleton.parent / skeleton.name[: -len(SKELETON_SUFFIX)]
        # A skeleton is deleted by its validation; one whose upload file is gone is a leftover.
        if not owner.exists():
            with contextlib.suppress(FileNotFoundError):
                skeleton.unlink()
                removed.append(skeleton)
    if removed:
        log.info("removed %d leftover upload file(s) in %s", len(removed), directory)
    return removed


def _remove_unless_locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # an upload in progress holds it
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


class SpoolFiles:
    """S3 uploads' spool files: new ones in `directory`, idle ones kept for reuse
    in `directory/idle`. Thread-safe. Every method blocks on the file system;
    `take` only for a mkdir, a rename and an open, so it runs on the event loop
    (a cancel there cannot lose the file, as it could in a worker thread)."""

    def __init__(self, directory: Path, keep: int) -> None:
        self.directory = directory
        self.keep = keep
        self._idle_dir = directory / IDLE_DIR
        self._lock = threading.Lock()
        self._idle: list[tuple[int, Path]] = []  # (size, path)
        self._closed = False

    def clear_idle(self) -> None:
        """At start: an earlier process's idle spools (it crashed, or shares the
        directory: its `take` then makes a new file) are deleted, not adopted."""
        if self._idle_dir.is_dir():
            for path in self._idle_dir.iterdir():
                with contextlib.suppress(OSError):
                    path.unlink()

    def take(self) -> LocalFile:
        """A spool for a new upload: the largest idle one, else a new file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{uuid.uuid4().hex}{SPOOL_SUFFIX}"
        while True:
            with self._lock:
                if not self._idle:
                    break
                self._idle.sort()
                _, idle = self._idle.pop()
            try:
                os.replace(idle, path)
                return LocalFile(path, reuse=True)
            except OSError:
                # Gone (someone cleaned the directory) or unusable: try the next.
                for stale in (idle, path):
                    with contextlib.suppress(OSError):
                        stale.unlink()
        return LocalFile(path)

    def keep_or_remove(self, file: LocalFile) -> None:
        """After an upload's version is recorded: keep its spool if fewer than
        `keep` are idle; delete it otherwise. Waits for a write in progress."""
        with file.lock:
            file.close_locked()
            with self._lock:
                if not self._closed and len(self._idle) < self.keep and file.size > 0:
                    idle = self._idle_dir / file.path.name
                    try:
                        size = file.path.stat().st_size
                        self._idle_dir.mkdir(exist_ok=True)
                        os.replace(file.path, idle)
                    except OSError:
                        pass
                    else:
                        self._idle.append((size, idle))
                        return
            file.path.unlink(missing_ok=True)

    def idle(self) -> list[Path]:
        with self._lock:
            return sorted(path for _, path in self._idle)

    def close(self) -> None:
        """Delete the idle spools and keep no more (the store is closing)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for _, path in idle:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
