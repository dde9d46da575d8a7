"""Web app benchmark (issue #13, "Performance") against a real stack, in Debian's Chromium.

    .venv/bin/python -m bench.web_bench [--runs 15] [--skip-upload] [--upload-mib 200] ...

It builds `web/dist` when missing or older than its sources (`npm run build`; `--no-build`
takes it as it is), copies it aside (so a rebuild by someone else during the run cannot change
what is measured), starts a stack of its own (`tests.stack_runner.start_stack`: ports 0, a
temporary state dir, the copy as `MLPLANE_WEB_DIR`, no rate limit, no demo plant), and runs the
browser-side scripts in `web/bench/` (node + Playwright + /usr/bin/chromium), each writing JSON:

  bundle.mjs      initial JavaScript: index.html's module script, its modulepreloads and their
                  static imports, gzipped as the gateway serves them (level 9); and the JS
                  bytes Chromium fetches loading `/` signed out (resource timing + CDP Network).
                  Target: <= 200 KB (200,000 bytes) gzipped.
  list.mjs        `--models` models (1,000; uploaded over gRPC from threads, tenant
                  `bench-web`), a data scientist signed in with `mlplane token --url`: /models
                  loaded afresh `--runs` times, from the models response's responseEnd to the
                  first paint after the rows are in the DOM. The app asks 50 per page; the same
                  is measured with the request rewritten to `--big-page` (1,000) per page, what
                  one page of all the models would cost. Target: < 100 ms (P95).
  validation.mjs  the upload form's Name field: from the input event to the error text shown /
                  gone and painted, `--validation-runs` each way, plus `--cold-runs` first
                  keystrokes on a fresh page. Target: < 50 ms (P95).
  upload.mjs      a `--upload-mib` (200) MiB valid ONNX model: `curl -F` (reference) and the
                  app's upload (file chooser, Upload, until "Uploaded … vN"), alternating,
                  `--upload-rounds` rounds after one unmeasured round each. Target: browser
                  >= 0.7x curl's MB/s (medians). Memory: the page's JS heap (CDP) and its
                  renderer's RSS (/proc) during those uploads and `--memory-runs` uploads of a
                  `--memory-mib` (20) MiB model: the growth must not follow the file's size.

Options: --runs N (list loads per page size, 15), --warmup N (2), --models N (1000),
--big-page N (1000), --validation-runs N (40), --cold-runs N (5), --upload-rounds N (3),
--upload-mib N (200), --memory-mib N (20), --memory-runs N (3), --skip-upload, --skip-list,
--skip-validation, --profile (a CPU profile of one extra list load per page size, summarised
in the JSON; the .cpuprofile files are kept beside it), --no-build, --keep-state,
--wait-quiet S (wait up to S s for no other test run or bench and >= 50 % idle CPU; the idle
share at the start is in the JSON), --candidate-dist DIR (a build of a proposed app change,
e.g. `npx vite build --outDir DIR` in a patched copy of web/: its models page and upload are
measured too, load by load alternating with the served build, its files served through
Chromium's request interception).

Prints the figures and the targets (met / NOT MET; nothing is asserted) and writes
bench/results/web-<UTC timestamp>.json. Everything it starts (the stack, node, Chromium) is
stopped on the way out, on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import psutil
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from bench.gateway_clients import curl_binary
from bench.measure import MIB, raise_interrupt, stop_leftover_children
from bench.report import Target, targets_table, text_table, write_json
from bench.upload_models import write_matmul_model
from tests.models.onnx_models import linear_model
from tests.stack_runner import (
    ROOT,
    WEB,
    RunningStack,
    run_cli,
    start_stack,
    stop_stack,
    web_dist_is_fresh,
)

SCRIPTS = WEB / "bench"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CHROMIUM = Path("/usr/bin/chromium")
TENANT = "bench-web"
LIST_USER = "dora"
UPLOAD_USER = "uma"
SEED_THREADS = 4
TOKEN_TTL = 4 * 3600
NODE_TIMEOUT = {"bundle": 300, "list": 1200, "validation": 900, "upload": 3600}
BUNDLE_BUDGET_BYTES = 200_000
LIST_BUDGET_MS = 100.0
VALIDATION_BUDGET_MS = 50.0
UPLOAD_RATIO_TARGET = 0.7
# "Does not grow with the file's size": the page's growth (peak - baseline) for the big file
# exceeds the small file's by less than 5 % of the extra bytes (under 9 MiB for 200 vs 20
# MiB). Holding the file, or a copy of it, shows as ~100 %; what does grow with an upload's
# length is garbage from re-rendering the progress (a few MB, collected).
MEMORY_SLOPE_LIMIT = 0.05
_BUSY_MARKERS = ("pytest", "bench.", "services.cli up", "playwright", "vitest", "vite build")


def _progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.web_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--runs", type=int, default=15, help="models page loads per page size (15)")
    add("--warmup", type=int, default=2, help="unmeasured models page loads first (2)")
    add("--models", type=int, default=1000, help="models in the tenant (1000)")
    add("--big-page", type=int, default=1000, help="the one-page-of-all figure's size (1000)")
    add("--validation-runs", type=int, default=40, help="validation transitions each way (40)")
    add("--cold-runs", type=int, default=5, help="first keystrokes on a fresh page (5)")
    add("--upload-rounds", type=int, default=3, help="curl / browser rounds (3)")
    add("--upload-mib", type=int, default=200, help="the big upload's size in MiB (200)")
    add("--memory-mib", type=int, default=20, help="the small upload's size in MiB (20)")
    add("--memory-runs", type=int, default=3, help="uploads of the small model (3)")
    add("--skip-upload", action="store_true", help="leave out the uploads and memory")
    add("--skip-list", action="store_true", help="leave out the models page")
    add("--skip-validation", action="store_true", help="leave out input validation")
    add("--profile", action="store_true", help="CPU-profile one extra list load per size")
    add("--no-build", action="store_true", help="use web/dist as it is, even if stale")
    add(
        "--candidate-dist",
        type=Path,
        help="a build of a proposed app change: list and upload figures for it too, "
        "alternating with the served build (its files through the browser's interception)",
    )
    add("--keep-state", action="store_true", help="keep the temporary folder (state, models)")
    add("--wait-quiet", type=int, default=0, help="wait up to S s for other runs to end (0)")
    args = parser.parse_args(argv)
    bounds = {
        "runs": (1, 500),
        "warmup": (0, 50),
        "models": (50, 5000),
        "big_page": (50, 1000),
        "validation_runs": (1, 1000),
        "cold_runs": (0, 50),
        "upload_rounds": (1, 20),
        "upload_mib": (1, 1000),
        "memory_mib": (1, 1000),
        "memory_runs": (1, 20),
        "wait_quiet": (0, 7200),
    }
    for name, (low, high) in bounds.items():
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be {low}-{high}")
    if args.memory_mib >= args.upload_mib:
        parser.error("--memory-mib must be smaller than --upload-mib")
    if args.candidate_dist is not None:
        args.candidate_dist = args.candidate_dist.resolve()
        if not (args.candidate_dist / "index.html").is_file():
            parser.error(f"--candidate-dist {args.candidate_dist} has no index.html")
    return args


# --- the machine -----------------------------------------------------------------------
def other_activity() -> list[str]:
    """Other test runs, benches, builds and stacks on this machine: they share its two cores."""
    me = psutil.Process()
    mine = {me.pid} | {p.pid for p in me.children(recursive=True)} | {p.pid for p in me.parents()}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            command = " ".join(proc.info["cmdline"] or [])
        except (psutil.Error, TypeError):
            continue
        if proc.info["pid"] not in mine and any(m in command for m in _BUSY_MARKERS):
            found.append(f"{proc.info['pid']} {command[:120]}")
    return found


def cpu_idle(seconds: float = 2.0) -> float:
    """The machine's idle share of CPU time over `seconds` (/proc/stat: idle + iowait)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(seconds: int) -> list[str]:
    """Up to `seconds` for no other test run or bench and at least half the CPU idle."""
    deadline = time.monotonic() + seconds
    while ((busy := other_activity()) or cpu_idle() < 0.5) and time.monotonic() < deadline:
        time.sleep(3)
    idle = cpu_idle()
    if busy or idle < 0.5:
        _progress(
            f"WARNING: not alone on this machine ({len(busy)} other runs, CPU {idle:.0%} idle); "
            "noisy figures"
        )
    return busy


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout.strip()


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "missing"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else ""
    )


def versions() -> dict[str, str]:
    found = {
        "node": _version(["node", "--version"]),
        "chromium": _version([str(CHROMIUM), "--version"]),
        "curl": _version([curl_binary(), "--version"]),
    }
    for package in ("playwright", "react", "react-dom", "@mantine/core", "vite"):
        manifest = WEB / "node_modules" / package / "package.json"
        if manifest.exists():
            found[package] = json.loads(manifest.read_text())["version"]
    return found


# --- the build ---------------------------------------------------------------------------
class BuildFailed(RuntimeError):
    """web/dist could not be built (e.g. sources half-way through an edit)."""


def ensure_built(no_build: bool) -> dict[str, Any]:
    """`web/dist`, built again when missing or older than its sources (unless --no-build)."""
    index = WEB / "dist" / "index.html"
    fresh = web_dist_is_fresh()
    info: dict[str, Any] = {"was_fresh": fresh, "built": False}
    if not fresh and not no_build:
        _progress("web/dist is missing or older than web/src: npm run build")
        started = time.perf_counter()
        done = subprocess.run(
            ["npm", "run", "build"],
            cwd=WEB,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise BuildFailed(
                f"`npm run build` in web/ failed ({done.returncode}); --no-build measures "
                f"web/dist as it is:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        info.update(built=True, build_seconds=round(time.perf_counter() - started, 1))
    if not index.is_file():
        raise RuntimeError("web/dist/index.html is missing (run `npm run build` in web/)")
    info["index_mtime"] = datetime.fromtimestamp(index.stat().st_mtime, UTC).isoformat()
    info["stale"] = not web_dist_is_fresh()
    return info


def snapshot_dist(work_dir: Path) -> Path:
    """A copy of web/dist: what this run serves and analyses, whatever happens to web/dist."""
    for _ in range(5):
        target = work_dir / "web-dist"
        shutil.rmtree(target, ignore_errors=True)
        try:
            shutil.copytree(WEB / "dist", target)
        except (shutil.Error, FileNotFoundError):  # a rebuild was emptying it
            time.sleep(5)
            continue
        if (target / "index.html").is_file():
            return target
        time.sleep(5)
    raise RuntimeError("could not copy a complete web/dist (is a build running?)")


# --- the data ----------------------------------------------------------------------------
def token(stack: RunningStack, subject: str, *, url: bool) -> str:
    args = ["token", "--role", "data_scientist", "--subject", subject, "--tenant", TENANT]
    args += ["--ttl", str(TOKEN_TTL)]
    done = run_cli(stack.state_dir, *args, *(["--url"] if url else []))
    if done.returncode != 0:
        raise RuntimeError(f"mlplane token failed: {done.stderr}")
    return done.stdout.strip()


_KINDS = ("bearing-risk", "seal-leak", "cavitation", "motor-overheat", "vibration-anomaly")


def _seed_request(i: int, data: bytes) -> Iterator[pb.UploadModelRequest]:
    kind = _KINDS[i % len(_KINDS)]
    name = f"pump-{i:04d}-{kind}"
    if i % 10 == 0:  # some long names, which the list cuts short
        name += "-gradient-boosted-trees-trained-on-ninety-days-of-history"
    meta = pb.UploadModelMetadata(
        name=name,
        description=(
            f"Predicts {kind.replace('-', ' ')} for pump {i} from 10 tags at 1 Hz."
            if i % 2 == 0
            else ""
        ),
        labels={"team": "reliability", "site": f"plant-{i % 7}"},
        metrics={"roc_auc": 0.8 + (i % 100) / 1000},
    )
    yield pb.UploadModelRequest(metadata=meta)
    yield pb.UploadModelRequest(chunk=data)


def seed_models(stack: RunningStack, bearer: str, count: int) -> dict[str, float]:
    """`count` tiny models in the tenant, over gRPC UploadModel from a few threads."""
    data = linear_model(features=8, seed=11)
    local = threading.local()
    channels: list[grpc.Channel] = []
    lock = threading.Lock()

    def stub() -> pb_grpc.ModelRegistryStub:
        if not hasattr(local, "stub"):
            channel = grpc.insecure_channel(stack.gateway_target)
            with lock:
                channels.append(channel)
            local.stub = pb_grpc.ModelRegistryStub(channel)
        return local.stub  # type: ignore[no-any-return]

    def upload(i: int) -> None:
        stub().UploadModel(
            _seed_request(i, data), metadata=(("authorization", f"Bearer {bearer}"),), timeout=60
        )

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(SEED_THREADS) as pool:
            for _ in pool.map(upload, range(count)):
                pass
    finally:
        for channel in channels:
            channel.close()
    seconds = time.perf_counter() - started
    return {"models": count, "seconds": round(seconds, 2), "per_second": round(count / seconds, 1)}


# --- node --------------------------------------------------------------------------------
def _stop_process_tree(proc: subprocess.Popen[bytes]) -> None:
    """Stop node and whatever it started (Chromium), by pid."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    _, alive = psutil.wait_procs(children, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def run_node(script: str, out: Path, env: dict[str, str]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed")
    _progress(f"node web/bench/{script}.mjs")
    proc = subprocess.Popen(
        [node, str(SCRIPTS / f"{script}.mjs"), str(out)],
        cwd=WEB,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        code = proc.wait(NODE_TIMEOUT[script])
    finally:  # also on a timeout or Ctrl-C; after a normal exit it finds nothing left
        _stop_process_tree(proc)
    if code != 0 or not out.exists():
        raise RuntimeError(f"web/bench/{script}.mjs failed (exit {code}); see its stderr above")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def node_env(
    stack: RunningStack, dist: Path, extra: dict[str, str], candidate: Path | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEB_BENCH_", "MLPLANE_"))}
    if candidate is not None:
        env["WEB_BENCH_CANDIDATE_DIST"] = str(candidate)
    env.update(
        {
            "WEB_BENCH_GATEWAY": stack.gateway_url,
            "WEB_BENCH_DIST": str(dist),
            "WEB_BENCH_CHROMIUM": str(CHROMIUM),
            "WEB_BENCH_CURL": curl_binary(),
            "WEB_BENCH_STACK_PIDS": json.dumps(stack.info.get("pids", {})),
            **extra,
        }
    )
    return env


# --- the run -----------------------------------------------------------------------------
def run(args: argparse.Namespace, work_dir: Path, doc: dict[str, Any]) -> None:
    doc["other_activity"] = {"at_start": wait_quiet(args.wait_quiet)}
    doc["machine"]["load_average_at_start"] = os.getloadavg()
    doc["machine"]["cpu_idle_at_start"] = round(cpu_idle(5.0), 3)
    doc["build"] = ensure_built(args.no_build)
    dist = snapshot_dist(work_dir)
    doc["build"]["entry"] = [
        line.strip() for line in (dist / "index.html").read_text().splitlines() if "assets/" in line
    ]
    max_bytes = max(1024**3, (args.upload_mib + 64) * MIB)
    _progress("starting a stack (embedded PostgreSQL, both services, Envoy serving the app)")
    stack = start_stack(
        work_dir / "state",
        MLPLANE_WEB_DIR=str(dist),
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="0",
        MLPLANE_DEMO_PLANT="false",
        MLPLANE_MAX_MODEL_BYTES=str(max_bytes),
    )
    try:
        _progress(f"stack up: {stack.gateway_url}")
        out = work_dir / "out"
        out.mkdir()
        phase(
            doc,
            "bundle",
            lambda: doc.update(
                bundle=run_node("bundle", out / "bundle.json", node_env(stack, dist, {}))
            ),
        )
        if not (args.skip_list and args.skip_validation):
            phase(doc, "list", lambda: list_phase(args, stack, dist, out, doc))
        if not args.skip_upload:
            phase(doc, "upload", lambda: upload_phase(args, stack, dist, work_dir, out, doc))
    finally:
        doc["machine"]["load_average_at_end"] = os.getloadavg()
        doc["machine"]["cpu_idle_at_end"] = round(cpu_idle(), 3)
        _progress("stopping the stack")
        survivors = stop_stack(stack)
        if survivors:
            _progress(f"WARNING: stack processes left behind (killed): {survivors}")


def phase(doc: dict[str, Any], name: str, body: Callable[[], object]) -> None:
    """Run one part; an error is reported (and kept in the JSON) and the next part runs."""
    try:
        body()
    except Exception as error:  # reported, kept in the JSON, and the run goes on
        _progress(f"ERROR in the {name} part: {error}")
        doc.setdefault("errors", {})[name] = str(error)


def list_phase(
    args: argparse.Namespace, stack: RunningStack, dist: Path, out: Path, doc: dict[str, Any]
) -> None:
    bearer = token(stack, LIST_USER, url=False)
    _progress(f"uploading {args.models} models over gRPC ({SEED_THREADS} threads)")
    doc["seed"] = seed_models(stack, bearer, args.models)
    _progress(f"seeded: {doc['seed']}")
    env = node_env(
        stack,
        dist,
        {
            "WEB_BENCH_LIST_SIGNIN_URL": token(stack, LIST_USER, url=True),
            "WEB_BENCH_MODEL_COUNT": str(args.models),
            "WEB_BENCH_BIG_PAGE": str(args.big_page),
            "WEB_BENCH_LIST_RUNS": str(args.runs),
            "WEB_BENCH_LIST_WARMUP": str(args.warmup),
            "WEB_BENCH_PROFILE": "1" if args.profile else "0",
            "WEB_BENCH_VALIDATION_RUNS": str(args.validation_runs),
            "WEB_BENCH_VALIDATION_COLD": str(args.cold_runs),
        },
        args.candidate_dist,
    )
    if not args.skip_list:
        doc["list"] = run_node("list", out / "list.json", env)
        if args.profile:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            for result in doc["list"]["results"]:
                if result.get("profile"):
                    source = Path(result["profile"]["file"])
                    name = f"web-{doc['stamp']}-list-{result['pageSize']}-{result['build']}"
                    kept = RESULTS_DIR / f"{name}.cpuprofile"
                    shutil.copyfile(source, kept)
                    result["profile"]["file"] = str(kept.relative_to(ROOT))
    if not args.skip_validation:
        doc["validation"] = run_node("validation", out / "validation.json", env)


def upload_phase(
    args: argparse.Namespace,
    stack: RunningStack,
    dist: Path,
    work_dir: Path,
    out: Path,
    doc: dict[str, Any],
) -> None:
    models = {}
    for key, mib in (("big", args.upload_mib), ("small", args.memory_mib)):
        _progress(f"writing a {mib} MiB ONNX model")
        made = write_matmul_model(work_dir / f"model-{mib}mib.onnx", mib * MIB, seed=mib)
        models[key] = {"path": str(made.path), "size": made.size, "sha256": made.sha256, "mib": mib}
    env = node_env(
        stack,
        dist,
        {
            "WEB_BENCH_UPLOAD_SIGNIN_URL": token(stack, UPLOAD_USER, url=True),
            "WEB_BENCH_UPLOAD_TOKEN": token(stack, UPLOAD_USER, url=False),
            "WEB_BENCH_UPLOAD_MODELS": json.dumps(models),
            "WEB_BENCH_UPLOAD_ROUNDS": str(args.upload_rounds),
            "WEB_BENCH_MEMORY_RUNS": str(args.memory_runs),
        },
        args.candidate_dist,
    )
    doc["upload"] = run_node("upload", out / "upload.json", env)


# --- the report --------------------------------------------------------------------------
def _kb(n: float) -> str:
    return f"{n / 1000:,.1f} KB"


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:+.2f} MB"


def _ms(s: dict[str, float] | None) -> str:
    return "-" if not s else f"{s['median']:.1f} / {s['p95']:.1f} / {s['max']:.1f}"


def bundle_table(bundle: dict[str, Any]) -> str:
    rows = [
        [
            f["file"],
            f["via"][:44],
            _kb(f["raw"]),
            _kb(f["gzip9"]),
            _kb(f["gzip6"]),
            _kb(f["brotli"]),
        ]
        for f in bundle["initialJs"]["files"]
    ]
    t = bundle["initialJs"]["total"]
    rows.append(["total", "", _kb(t["raw"]), _kb(t["gzip9"]), _kb(t["gzip6"]), _kb(t["brotli"])])
    table = text_table(["initial JS", "loaded by", "raw", "gzip -9", "gzip -6", "brotli"], rows)
    loads = bundle["browser"]
    load_rows = [
        [
            str(i + 1),
            loads[i]["heading"] or "",
            f"{loads[i]['staticFilesFetched']}/{loads[i]['staticFilesExpected']}",
            _kb(loads[i]["jsEncodedBodyBytes"]["static"]),
            _kb(loads[i]["jsEncodedBodyBytes"]["lazy"]),
            _kb(loads[i]["jsEncodedBodyBytes"]["all"]),
            _kb(loads[i]["jsCdpEncodedDataLength"]["all"]),
        ]
        for i in range(len(loads))
    ]
    header = ["load `/`", "page", "static", "static JS", "lazy JS", "all JS", "CDP w/ headers"]
    css = ", ".join(
        f"{c['file']} {_kb(c['raw'])} raw, {_kb(c['gzip9'])} gzip -9" for c in bundle["initialCss"]
    )
    return table + f"\ninitial CSS (not counted): {css}\n\n" + text_table(header, load_rows)


def _list_label(r: dict[str, Any], app: int) -> str:
    size = f"{r['pageSize']} rows ({'app' if r['pageSize'] == app else 'rewritten'})"
    return size if r.get("build", "served") == "served" else f"{size}, candidate"


def list_table(result: dict[str, Any]) -> str:
    rows = []
    app = result["appPageSize"]
    for r in result["results"]:
        rows.append(
            [
                _list_label(r, app),
                _ms(r["dataToPaintMs"]),
                _ms(r["dataToDomMs"]),
                _ms(r["mainThreadCpuMs"]),
                _ms(r["mainThreadWaitMs"]),
                _ms(r["requestMs"]),
                str(r["dataToPaintMs"]["n"]),
            ]
        )
    header = [
        f"models page ({result['models']} models)",
        "data->paint ms (med/P95/max)",
        "data->DOM",
        "main thread CPU",
        "waiting for a core",
        "request",
        "n",
    ]
    return text_table(header, rows)


def validation_table(result: dict[str, Any]) -> str:
    rows = [
        [
            what,
            _ms(result[key]["inputToPaintMs"]),
            _ms(result[key]["inputToDomMs"]),
            _ms(result[key].get("mainThreadCpuMs")),
            _ms(result[key].get("mainThreadWaitMs")),
            str(result[key]["inputToPaintMs"]["n"]),
        ]
        for what, key in (
            ("error appears (warm)", "appear"),
            ("error disappears (warm)", "disappear"),
            ("first keystroke, fresh page", "cold"),
        )
        if result[key]["inputToPaintMs"]
    ]
    over = result["eventTimingOver16ms"]
    header = [
        "Name field",
        "input->paint ms (med/P95/max)",
        "input->DOM",
        "main thread CPU",
        "waiting for a core",
        "n",
    ]
    worst = max((e["duration"] for e in over), default=0)
    table = text_table(header, rows)
    return table + f"\nChromium Event Timing: {len(over)} events over 16 ms (longest {worst:.0f})"


def _upload_clients(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = [
        ("curl", "curl -F (reference)", result["curl"]),
        ("browser", "the app in Chromium", result["browser"]),
    ]
    if "candidate" in result:
        found.append(("candidate", "candidate build", result["candidate"]))
    return found


_CPU_COLUMNS = (
    ("models", "models svc"),
    ("envoy", "Envoy"),
    ("chromium utility:network.mojom.NetworkService", "Chromium network svc"),
    ("chromium renderer", "page renderer"),
    ("chromium browser", "Chromium browser"),
    ("children", "curl"),
)


def upload_table(result: dict[str, Any]) -> str:
    size = result["big"]["size"]
    rows = []
    for key, label, s in _upload_clients(result):
        rows.append(
            [
                label,
                f"{s['mbPerSecond']['median']:.0f}",
                " / ".join(f"{size / 1e6 / r['seconds']:.0f}" for r in s["runs"]),
                f"{s['seconds']['median']:.2f}",
                ""
                if key == "curl"
                else f"{s['mbPerSecond']['median'] / result['curl']['mbPerSecond']['median']:.2f}",
            ]
        )
    header = [f"upload {result['big']['mib']} MiB", "MB/s median", "each round", "s", "/ curl"]
    table = text_table(header, rows)
    cpu_rows = [
        [label, *(f"{(s['cpuSecondsMedian'].get(k) or 0):.2f}" for k, _ in _CPU_COLUMNS)]
        for _, label, s in _upload_clients(result)
    ]
    cpu = text_table(["CPU-s per upload (median)", *(c for _, c in _CPU_COLUMNS)], cpu_rows)
    mem_rows = []
    for key, label, s in _upload_clients(result):
        if key == "curl":
            continue
        for size_key in ("small", "big"):
            m = s["memory"][size_key]
            mem_rows.append(
                [
                    f"{label}, {result[size_key]['mib']} MiB",
                    _mb(m["jsHeapUsedGrowth"]["median"]),
                    _mb(m["rendererRssGrowth"]["median"]),
                    _mb(m["browserProcessRssGrowth"]["median"]),
                    _mb(m["networkServiceRssGrowth"]["median"]),
                    f"{m['jsHeapUsedPeak']['median'] / 1e6:.1f} MB",
                    _mb(m["jsHeapUsedRetainedAfterGc"]["median"]),
                ]
            )
    mem_header = [
        "growth, peak - baseline (median)",
        "JS heap used",
        "renderer RSS",
        "browser RSS",
        "network svc RSS",
        "JS heap peak",
        "JS heap kept after GC",
    ]
    return table + "\n\n" + cpu + "\n\n" + text_table(mem_header, mem_rows)


def memory_slope(upload: dict[str, Any], key: str, client: str = "browser") -> float:
    """Bytes the page keeps per extra byte uploaded: (growth big - growth small) / extra."""
    memory = upload[client]["memory"]
    big = memory["big"][key]["median"]
    small = memory["small"][key]["median"]
    extra = upload["big"]["size"] - upload["small"]["size"]
    return float((big - small) / extra)


def targets(doc: dict[str, Any]) -> list[Target]:
    found = []
    if "bundle" in doc:
        total = doc["bundle"]["initialJs"]["total"]["gzip9"]
        found.append(
            Target(
                "initial JS, gzip -9 (static graph)",
                total / 1000,
                "<=",
                BUNDLE_BUDGET_BYTES / 1000,
                "KB",
            )
        )
        seen = statistics.median(
            b["jsEncodedBodyBytes"]["static"] for b in doc["bundle"]["browser"]
        )
        found.append(
            Target(
                "initial JS fetched by Chromium at `/`",
                seen / 1000,
                "<=",
                BUNDLE_BUDGET_BYTES / 1000,
                "KB",
            )
        )
    for r in doc.get("list", {}).get("results", []):
        app = r["pageSize"] == doc["list"]["appPageSize"]
        label = (
            f"models page, {r['pageSize']} rows {'(the app)' if app else '(one page, rewritten)'}"
        )
        if r.get("build", "served") != "served":
            label += ", candidate"
        found.append(
            Target(
                f"{label}: data->paint P95", r["dataToPaintMs"]["p95"], "<", LIST_BUDGET_MS, "ms"
            )
        )
    if "validation" in doc:
        v = doc["validation"]
        for key, label in (("appear", "appears"), ("disappear", "disappears"), ("cold", "1st key")):
            if v[key]["inputToPaintMs"]:
                value = v[key]["inputToPaintMs"]["p95"]
                what = f"validation: error {label}, P95"
                found.append(Target(what, value, "<", VALIDATION_BUDGET_MS, "ms"))
    if "upload" in doc:
        u = doc["upload"]
        found.append(
            Target(
                "upload: browser / curl -F (medians)", u["ratio"], ">=", UPLOAD_RATIO_TARGET, "x"
            )
        )
        for key, label in (("jsHeapUsedGrowth", "JS heap"), ("rendererRssGrowth", "renderer RSS")):
            slope = memory_slope(u, key) * 100
            found.append(
                Target(
                    f"memory: {label} growth per byte uploaded",
                    slope,
                    "<",
                    MEMORY_SLOPE_LIMIT * 100,
                    "%",
                )
            )
        if "candidate" in u:
            ratio = u["candidate"]["ratio"]
            found.append(
                Target(
                    "upload: candidate / curl -F (medians)", ratio, ">=", UPLOAD_RATIO_TARGET, "x"
                )
            )
    return found


def report(doc: dict[str, Any]) -> Path:
    """Writes the JSON first (a table that cannot be drawn loses nothing), then prints."""
    try:
        found = targets(doc)
    except (KeyError, TypeError, ZeroDivisionError) as error:
        doc.setdefault("errors", {})["targets"] = repr(error)
        found = []
    doc["targets"] = [{**t.__dict__, "met": t.met} for t in found]
    path = RESULTS_DIR / f"web-{doc['stamp']}.json"
    write_json(path, doc)
    tables = (
        ("bundle", bundle_table),
        ("list", list_table),
        ("validation", validation_table),
        ("upload", upload_table),
    )
    for key, table in tables:
        if key in doc:
            try:
                print("\n" + table(doc[key]))
            except (KeyError, TypeError, ZeroDivisionError) as error:
                print(f"\n({key}: no table: {error!r}; see the JSON)")
    print("\n" + targets_table(found) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="mlplane-web-bench-"))
    started = time.perf_counter()
    doc: dict[str, Any] = {
        "bench": "web",
        "stamp": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        "time": datetime.now(UTC).isoformat(),
        "command": " ".join(["python -m bench.web_bench", *(argv or sys.argv[1:])]),
        "args": vars(args),
        "git": {
            "head": _git("rev-parse", "--short", "HEAD"),
            "uncommitted_web_files": _git("status", "--porcelain", "--", "web/src").splitlines(),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "platform": platform.platform(),
        },
        "versions": versions(),
        "notes": {
            "KB": "1 KB = 1000 bytes; MB = 10^6 bytes",
            "bundle": "gzip -9 is what the gateway serves (gateway/web_routes.py)",
            "list": "responseEnd of GET /api/v1/models -> 2nd requestAnimationFrame after the "
            "expected rows are in the DOM; each run a fresh page load of /models",
            "validation": "input event timeStamp -> 2nd requestAnimationFrame after the field's "
            "error element appears / disappears",
            "upload": "browser: submit event -> 'Uploaded <name> vN' in the DOM; curl: time_total",
        },
    }
    try:
        run(args, work_dir, doc)
        path = report(doc)
        _progress(f"wrote {path.relative_to(ROOT)} ({time.perf_counter() - started:.0f}s in all)")
        return 1 if doc.get("errors") else 0
    except KeyboardInterrupt:
        _progress("interrupted; stopping everything")
        return 130
    except BuildFailed as error:
        _progress(f"ERROR: {error}")
        return 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_leftover_children()
        if args.keep_state:
            _progress(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
