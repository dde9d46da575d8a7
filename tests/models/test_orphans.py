"""Stored files that no version names (an upload cut off between storing its file and
recording its row) are removed once old enough, by the models service itself; files that a
row names, young files (an upload in flight elsewhere), files of another shape and everything
while the database cannot answer are kept."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from grpc import aio
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from services.common.db import create_engine
from services.common.devkeys import ensure_dev_keys
from services.common.server import start_server
from services.common.settings import Settings
from services.db.setup import REGISTRY_ROLE, RoleCredentials, role_dsn, setup_database
from services.models.object_store import FolderStore, S3Store, object_key
from services.models.orphans import is_registry_key, sweep_orphans
from services.models.repository import RegistryRepository
from services.models.service import models_spec
from services.stack.postgres import EmbeddedPostgres
from tests.models.onnx_models import linear_model
from tests.s3_server import S3Bucket
from tests.tokens import Tokens

HOUR = timedelta(hours=1)


def _key(slot: int = 1) -> str:
    return object_key("demo", str(uuid.uuid4()), slot)


def _later(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def _place(root: Path, key: str, age: timedelta) -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"onnx bytes")
    then = time.time() - age.total_seconds()
    os.utime(path, (then, then))
    return path


def test_only_keys_of_the_registrys_shape_are_looked_at() -> None:
    assert is_registry_key(_key(7))
    for foreign in (
        "notes.txt",
        "demo/not-a-uuid/1.onnx",
        f"demo/{uuid.uuid4()}/0.onnx",
        f"demo/{uuid.uuid4()}/1.onnx.bak",
        f"a/b/demo/{uuid.uuid4()}/1.onnx",
        f".incoming/{uuid.uuid4().hex}.part",
    ):
        assert not is_registry_key(foreign), foreign


async def test_folder_store_old_unnamed_files_go_the_rest_stay(tmp_path: Path) -> None:
    store = FolderStore(tmp_path)
    named, orphan, young = _key(), _key(), _key()
    _place(tmp_path, named, 2 * HOUR)
    _place(tmp_path, orphan, 2 * HOUR)
    _place(tmp_path, young, timedelta(minutes=5))
    foreign = _place(tmp_path, "notes/readme.onnx", 2 * HOUR)
    in_flight = _place(tmp_path, ".incoming/abc.part", 2 * HOUR)
    asked: list[list[str]] = []

    async def named_keys(keys: list[str]) -> set[str]:
        asked.append(sorted(keys))
        return {named} & set(keys)

    result = await sweep_orphans(store, named_keys, min_age=HOUR)
    assert (result.looked_at, result.removed, result.kept_young) == (3, 1, 1)
    assert asked == [sorted([named, orphan])]  # young and foreign files are never asked about
    assert not (tmp_path / orphan).exists()
    assert all(p.exists() for p in (tmp_path / named, tmp_path / young, foreign, in_flight))


async def test_a_database_that_cannot_answer_removes_nothing(tmp_path: Path) -> None:
    orphan = _place(tmp_path, _key(), 2 * HOUR)

    async def named_keys(keys: list[str]) -> set[str]:
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError):
        await sweep_orphans(FolderStore(tmp_path), named_keys, min_age=HOUR)
    assert orphan.exists()


async def test_s3_store_lists_and_sweeps_real_objects(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    store = await S3Store.open(Settings(state_dir=tmp_path, **s3_bucket.settings()))
    try:
        keys = [_key(), _key()]
        for key in keys:
            writer = await store.writer(key)
            await asyncio.to_thread(writer.write, [b"onnx bytes"])
            await writer.written()
            await writer.commit()
            await writer.release()
        listed = {key: modified async for key, modified in store.listing()}
        assert set(keys) <= set(listed)
        assert all(abs(listed[k] - datetime.now(UTC)) < timedelta(minutes=5) for k in keys)

        async def named_keys(found: list[str]) -> set[str]:
            return {keys[0]} & set(found)

        # Just stored: too young to be touched.
        young = await sweep_orphans(store, named_keys, min_age=HOUR)
        assert young.removed == 0
        assert await store.exists(keys[1])
        # Seen two hours later: the unnamed one goes.
        later = await sweep_orphans(store, named_keys, min_age=HOUR, now=lambda: _later(2))
        assert later.removed == 1
        assert await store.exists(keys[0])
        assert not await store.exists(keys[1])
    finally:
        await store.close()


@pytest.mark.stack
async def test_the_models_service_sweeps_at_start_and_keeps_what_rows_name(rig_dir: Path) -> None:
    state = rig_dir / "state"
    objects = state / "objects"
    old_orphan = _place(objects, _key(), 2 * HOUR)
    young_orphan = _place(objects, _key(), timedelta(minutes=1))
    pg = EmbeddedPostgres(state)
    pg.start()
    server = None
    try:
        creds = RoleCredentials.load_or_create(state / "db-roles.json")
        await setup_database(pg.dsn(), creds)
        settings = Settings(
            state_dir=state,
            registry_database_url=role_dsn(pg.dsn(), REGISTRY_ROLE, creds.registry_password),
            orphan_min_age_seconds=3600,
        )
        ensure_dev_keys(settings)
        server = await start_server(
            settings, models_spec(settings), listen="127.0.0.1:0", metrics_port=0
        )
        deadline = time.monotonic() + 20
        while old_orphan.exists():
            assert time.monotonic() < deadline, "the start sweep never removed the old orphan"
            await asyncio.sleep(0.05)
        assert young_orphan.exists()

        token = Tokens(settings).valid("data_scientist", subject="alice")

        async def requests() -> AsyncIterator[pb.UploadModelRequest]:
            yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name="kept"))
            yield pb.UploadModelRequest(chunk=linear_model(4))

        async with aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            version = await pb_grpc.ModelRegistryStub(channel).UploadModel(
                requests(), metadata=(("authorization", f"Bearer {token}"),)
            )
        stored = objects / object_key("demo", version.model_id, version.version)
        assert stored.exists()

        # The repository's answer, against the real database: two hours on, the uploaded
        # file (its row names it) stays and the young orphan goes.
        engine = create_engine(settings.registry_database_url or "", settings)
        repo = RegistryRepository(engine)
        try:
            result = await sweep_orphans(
                FolderStore(objects), repo.named_keys, min_age=HOUR, now=lambda: _later(2)
            )
        finally:
            await repo.close()
        assert (result.looked_at, result.removed) == (2, 1)
        assert stored.exists()
        assert not young_orphan.exists()
    finally:
        if server is not None:
            await server.stop(1)
        pg.stop()
