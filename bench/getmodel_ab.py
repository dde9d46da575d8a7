"""GetModel A/B between two checkouts: both stacks up at once, `wrk` alternating between them.

    .venv/bin/python -m bench.getmodel_ab /path/to/other/checkout   # that tree needs its .venv

Each checkout starts a stack of its own (its own code, no demo plant, rate limit off), uploads
one model, and then `wrk -t2 -c16` hits GET /api/v1/models/{id} through each gateway for 10 s
at a time, 5 rounds, the order alternating, so drift of this noisy 2-core VM hits both alike.
Prints every round and the medians, with the CPU each request cost the models service and
Envoy (from /proc, steadier than throughput on a VM whose speed drifts). Needs `wrk` (Debian
package). Stops both stacks at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 5
# req/s, P50, P90, P99 (ms), non-2xx, models and Envoy CPU ms per request
Row = tuple[float, float, float, float, int, float, float]
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _stack_script(tree: str, state: Path) -> str:
    """What runs in the checkout's own interpreter, with its own tests.stack_runner and code."""
    return "\n".join(
        [
            "import json, signal, sys, time",
            f"sys.path[:0] = [{tree!r}, {tree + '/generated'!r}]",
            "from pathlib import Path",
            "import httpx",
            "from tests.stack_runner import start_stack, stop_stack",
            "from tests.models.onnx_models import linear_model",
            f"stack = start_stack(Path({str(state)!r}), MLPLANE_DEMO_PLANT='false',",
            "    MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND='0')",
            "tok = stack.tokens.valid('data_scientist')",
            "r = httpx.post(stack.gateway_url + '/api/v1/models', data={'name': 'ab-model'},",
            "    files={'file': ('m.onnx', linear_model(8))},",
            "    headers={'Authorization': 'Bearer ' + tok}, timeout=30)",
            "info = {'url': stack.gateway_url, 'token': tok, 'model': r.json()['modelId'],",
            "    'pids': stack.info['pids']}",
            "print(json.dumps(info), flush=True)",
            "stop = []",
            "signal.signal(signal.SIGTERM, lambda *a: stop.append(1))",
            "while not stop:",
            "    time.sleep(0.5)",
            "stop_stack(stack)",
        ]
    )


def start(tree: str, name: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    state = Path(tempfile.mkdtemp(prefix=f"ab-{name}-"))
    proc = subprocess.Popen(
        [f"{tree}/.venv/bin/python", "-c", _stack_script(tree, state)],
        cwd=tree,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def wrk(info: dict[str, Any], seconds: int = 10) -> Row:
    url = f"{info['url']}/api/v1/models/{info['model']}"
    auth = f"Authorization: Bearer {info['token']}"
    argv = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-H", auth, url]
    pids = [info["pids"]["models"], info["pids"]["envoy"]]
    cpu_before = [_cpu_seconds(pid) for pid in pids]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    cpu = [_cpu_seconds(pid) - was for pid, was in zip(pids, cpu_before, strict=True)]
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found is not None, out

    def percentile(p: int) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m is not None, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(non2xx.group(1)) if non2xx else 0
    total = re.search(r"(\d+) requests in", out)
    assert total is not None, out
    per_request = [1000 * c / int(total.group(1)) for c in cpu]
    rps = float(found.group(1))
    return rps, percentile(50), percentile(90), percentile(99), bad, *per_request


def compare(infos: dict[str, dict[str, Any]]) -> None:
    for info in infos.values():
        wrk(info, 3)  # warm-up
    results: dict[str, list[Row]] = {"before": [], "after": []}
    for round_ in range(ROUNDS):
        for name in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
            row = results[name]
            row.append(wrk(infos[name]))
            rps, p50, p90, p99, bad, models, envoy = row[-1]
            print(
                f"{name} {round_} req/s {rps:.0f} P50 {p50:.2f} P90 {p90:.2f} P99 {p99:.2f} "
                f"non-2xx {bad}; CPU ms/request models {models:.3f} envoy {envoy:.3f}",
                flush=True,
            )
    medians: dict[str, tuple[float, float]] = {}
    mid = ROUNDS // 2
    for name, rows in results.items():
        rps = sorted(r[0] for r in rows)
        p90 = sorted(r[2] for r in rows)
        models = sorted(r[5] for r in rows)
        envoy = sorted(r[6] for r in rows)
        medians[name] = (rps[mid], models[mid])
        print(
            f"{name}: median req/s {rps[mid]:.0f} (min {rps[0]:.0f}, max {rps[-1]:.0f}); "
            f"median P90 {p90[mid]:.2f} ms; median CPU ms/request models {models[mid]:.3f} "
            f"envoy {envoy[mid]:.3f}"
        )
    print(
        f"after/before: throughput {medians['after'][0] / medians['before'][0]:.3f}, "
        f"models CPU per request {medians['after'][1] / medians['before'][1]:.3f}"
    )


def main(other: str) -> None:
    procs: dict[str, subprocess.Popen[str]] = {}
    infos: dict[str, dict[str, Any]] = {}
    try:
        for name, tree in (("before", other), ("after", str(ROOT))):
            procs[name], infos[name] = start(tree, name)
        compare(infos)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(60)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
