"""The service's S3 writer alone against boto3, without gRPC or Envoy.

    .venv/bin/python -m bench.s3_writer_bench [--mib 1024] [--rounds 3]

Starts `moto_server` on loopback and, alternately in each round, uploads the same
~1 GiB file with `boto3.upload_file` (default TransferConfig) and through
`S3Store.writer` (the spool file, its parts sent from it) in 4 MiB blocks, as the
upload service feeds it. Prints MB/s and moto's CPU seconds for each upload: it
separates what the writer costs from what carrying the bytes through Envoy and
the gRPC receive costs (bench/upload_bench.py measures the whole path).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from bench import upload_s3 as s3
from bench.measure import MIB
from bench.upload_models import ModelFile, write_matmul_model
from services.common.settings import Settings
from services.models.object_store import S3Store

BLOCK = 4 * MIB


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _writer_upload(store: S3Store, model: ModelFile, key: str) -> None:
    writer = await store.writer(key)
    try:
        with model.path.open("rb", buffering=0) as handle:
            while block := await asyncio.to_thread(handle.read, BLOCK):
                await asyncio.to_thread(writer.write, [block])
                await writer.written()
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise


async def run(mib: int, rounds: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="mlplane-s3-writer-bench-"))
    model = write_matmul_model(work / "model.onnx", mib * MIB)
    moto = s3.MotoServer(work / "moto.log")
    moto.start()
    os.environ.update(s3.CREDENTIALS)
    store = await S3Store.open(
        Settings(
            state_dir=work / "state",
            store="s3",
            s3_bucket=s3.BUCKET,
            s3_endpoint_url=moto.endpoint,
        )
    )
    figures: dict[str, list[float]] = {"boto3 upload_file": [], "S3Store writer": []}
    try:
        moto_process = psutil.Process(moto.pid)
        for round_number in range(1, rounds + 1):
            for label in figures:
                before, started = _cpu(moto_process), time.perf_counter()
                if label == "S3Store writer":
                    await _writer_upload(store, model, f"writer/{round_number}.onnx")
                else:
                    await asyncio.to_thread(s3.boto3_upload, moto, model, "boto3_default")
                seconds = time.perf_counter() - started
                mbps = model.size / seconds / 1e6
                figures[label].append(mbps)
                print(
                    f"round {round_number} {label:18s} {mbps:6.1f} MB/s  "
                    f"moto {_cpu(moto_process) - before:5.2f} CPU-s",
                    flush=True,
                )
            moto.delete_all()
        for label, values in figures.items():
            print(f"median {label:18s} {statistics.median(values):6.1f} MB/s")
    finally:
        await store.close()
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.s3_writer_bench", description=__doc__)
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (1024)")
    parser.add_argument("--rounds", type=int, default=3, help="uploads of each kind (3)")
    args = parser.parse_args()
    asyncio.run(run(args.mib, args.rounds))


if __name__ == "__main__":
    main()
