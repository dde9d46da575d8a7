"""The web app in a real browser (issue #13): Playwright drives Debian's Chromium against real
stacks started here, with no mocked API.

Two stacks, each the real thing (Envoy serving the built app `web/dist` and the REST API on one
origin, both services, embedded PostgreSQL, the folder object store), every port chosen by the
kernel:

* `dev` trusts the embedded dev issuer: users sign in by opening the links
  `mlplane token --role R --subject S --url` prints. Its demo plant is small (quick to load)
  and its upload limit is 1 MiB (so "too large" costs nothing to test).
* `oidc` trusts a real OpenID provider (npm `oidc-provider`, `web/e2e/oidc/provider.mjs`)
  started here on a free port: the app signs in with authorization code + PKCE, and
  `mlplane token` refuses.

The suite (`web/e2e/*.spec.ts`, `web/playwright.config.ts`) learns where everything is from
`WEB_E2E_*` variables; it mints dev tokens with `.venv/bin/mlplane token` in the dev stack's
state folder and saves a screenshot of each page into `WEB_E2E_SCREENSHOTS` (this process's own
`WEB_E2E_SCREENSHOTS` if set, else a folder that goes with the run). Chromium comes from Debian
(`scripts/ensure_chromium.sh`, called by `make test`): Playwright cannot download its own here.

Standalone: `.venv/bin/python -m pytest tests/web -q` (about two minutes, after a build).
"""

from __future__ import annotations

import json
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import private_tmp
from tests.models.onnx_models import linear_model
from tests.stack_runner import ROOT, WEB, RunningStack, start_stack, stop_stack, web_dist_is_fresh

CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT = WEB / "node_modules" / ".bin" / "playwright"
TSC = WEB / "node_modules" / ".bin" / "tsc"
PROVIDER_SCRIPT = WEB / "e2e" / "oidc" / "provider.mjs"
MAX_MODEL_BYTES = 1024 * 1024
# Each Playwright project's whole run; the tests themselves have their own timeouts.
PLAYWRIGHT_TIMEOUT = 420
REPORT_CHARS = 40_000

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]


# --- the build, the browser, the files to upload ----------------------------------------
def ensure_built() -> Path:
    """`web/dist`, built again when missing or older than what it is made from."""
    dist = WEB / "dist"
    if web_dist_is_fresh():
        return dist
    result = subprocess.run(
        ["npm", "run", "build"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"`npm run build` in web/ failed ({result.returncode}):\n"
            f"{result.stdout[-8000:]}\n{result.stderr[-8000:]}"
        )
    return dist


def check_tools() -> None:
    if not PLAYWRIGHT.exists():
        pytest.fail("web/node_modules has no Playwright: run `cd web && npm ci` (make web-check)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash scripts/ensure_chromium.sh` (make test)")


def write_upload_files(folder: Path) -> Path:
    """A small valid ONNX model, and a pickle (what a scikit-learn user might send instead)
    under an .onnx and a .pkl name."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(linear_model(features=8, seed=3))
    pickled = pickle.dumps({"coef": [0.25] * 8, "intercept": 0.5}, protocol=4)
    (folder / "pickle.onnx").write_bytes(pickled)
    (folder / "model.pkl").write_bytes(pickled)
    return folder


# --- the OpenID provider ------------------------------------------------------------------
def _read_json_line(proc: subprocess.Popen[str], timeout: float, what: str) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the OpenID provider did not say {what} within {timeout:.0f}s")
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the OpenID provider exited ({proc.wait(5)}) before {what}")
        line = line.strip()
        if line.startswith("{"):
            return dict(json.loads(line))


@dataclass
class OidcProvider:
    proc: subprocess.Popen[str]
    issuer: str
    jwks_uri: str
    client_id: str
    log: Path

    @classmethod
    def start(cls, log: Path) -> OidcProvider:
        node = shutil.which("node")
        assert node, "node is needed for the OpenID provider"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [node, str(PROVIDER_SCRIPT)],
                cwd=WEB,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        try:
            hello = _read_json_line(proc, 30, "its issuer")
        except BaseException:
            _stop_process(proc)
            raise
        return cls(proc, hello["issuer"], hello["jwks_uri"], hello["client_id"], log)

    def register_client(self, gateway: str) -> None:
        """The app's redirect URIs are on the gateway's origin, known once its stack runs."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"gateway": gateway}) + "\n")
        self.proc.stdin.flush()
        assert _read_json_line(self.proc, 30, "that its client is registered")["ready"] is True

    def stop(self) -> None:
        _stop_process(self.proc)


def _stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- the two stacks -----------------------------------------------------------------------
@dataclass
class BrowserRun:
    root: Path
    dev: RunningStack
    oidc: RunningStack
    provider: OidcProvider
    store_dir: Path
    files: Path
    screenshots: Path
    # Playwright projects started ahead, by project (see `start_playwright`).
    started: dict[str, PlaywrightRun] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "WEB_E2E_"))}
        env.update(
            {
                "WEB_E2E_GATEWAY": self.dev.gateway_url,
                "WEB_E2E_STATE_DIR": str(self.dev.state_dir),
                "WEB_E2E_STORE_DIR": str(self.store_dir),
                "WEB_E2E_MLPLANE": str(ROOT / ".venv" / "bin" / "mlplane"),
                "WEB_E2E_FILES": str(self.files),
                "WEB_E2E_SCREENSHOTS": str(self.screenshots),
                "WEB_E2E_OIDC_GATEWAY": self.oidc.gateway_url,
                "WEB_E2E_OIDC_ISSUER": self.provider.issuer,
                "WEB_E2E_CHROMIUM": str(CHROMIUM),
                # No HTML report to open, and a test.only left in fails the run.
                "CI": "1",
            }
        )
        return env


def _stop(stack: RunningStack) -> None:
    survivors = stop_stack(stack)
    assert not survivors, f"processes left behind: {survivors}"


@pytest.fixture(scope="module")
def browser_run() -> Iterator[BrowserRun]:
    check_tools()
    dist = ensure_built()
    root = private_tmp("mlplane-web-e2e-")
    shots = Path(os.environ.get("WEB_E2E_SCREENSHOTS") or root / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    files = write_upload_files(root / "files")
    store_dir = root / "dev" / "objects"
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        dev = start_stack(
            root / "dev" / "state",
            MLPLANE_WEB_DIR=str(dist),
            MLPLANE_STORE_DIR=str(store_dir),
            # Two days of demo plant load in a couple of seconds and still give the asset
            # pages a day of history to chart and download.
            MLPLANE_DEMO_PLANT_DAYS="2",
            MLPLANE_MAX_MODEL_BYTES=str(MAX_MODEL_BYTES),
        )
        cleanup.callback(_stop, dev)
        provider = OidcProvider.start(root / "oidc-provider.log")
        cleanup.callback(provider.stop)
        oidc = start_stack(
            root / "oidc" / "state",
            MLPLANE_WEB_DIR=str(dist),
            MLPLANE_DEMO_PLANT="false",
            MLPLANE_JWT_JWKS_URL=provider.jwks_uri,
            MLPLANE_JWT_ISSUER=provider.issuer,
            MLPLANE_JWT_AUDIENCE="mlplane",
            MLPLANE_OIDC_CLIENT_ID=provider.client_id,
            MLPLANE_MAX_MODEL_BYTES=str(MAX_MODEL_BYTES),
        )
        cleanup.callback(_stop, oidc)
        provider.register_client(oidc.gateway_url)
        run = BrowserRun(root, dev, oidc, provider, store_dir, files, shots)
        cleanup.callback(_stop_started, run)
        yield run


@dataclass
class PlaywrightRun:
    """`playwright test --project=P` running, its output going to a file."""

    proc: subprocess.Popen[bytes]
    output: Path
    started: float

    def finish(self) -> tuple[int, str]:
        """Its exit code and output, once it ends (-1 if it ran over PLAYWRIGHT_TIMEOUT)."""
        try:
            code = self.proc.wait(max(1.0, self.started + PLAYWRIGHT_TIMEOUT - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.stop()
            return -1, (
                f"Playwright ran over {PLAYWRIGHT_TIMEOUT}s and was stopped:\n"
                + self.output.read_text(errors="replace")
            )
        return code, self.output.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # by PID; its Chromium children end with their pipe
            self.proc.wait(30)


def start_playwright(run: BrowserRun, project: str) -> PlaywrightRun:
    output = run.root / f"playwright-{project}.log"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [str(PLAYWRIGHT), "test", f"--project={project}"],
            cwd=WEB,
            env=run.env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return PlaywrightRun(proc, output, time.monotonic())


def run_playwright(run: BrowserRun, project: str) -> tuple[int, str]:
    """The project's run: the one started ahead (`start_playwright`), else one started now."""
    started = run.started.pop(project, None) or start_playwright(run, project)
    return started.finish()


def _stop_started(run: BrowserRun) -> None:
    """A run started ahead whose test never came (deselected, or the session stopped)."""
    for started in run.started.values():
        started.stop()


def _report(output: str, project: str, *logs: Path) -> str:
    """Playwright's report: each test's line first, then the failures' details (the end of
    the output, where the list reporter puts them), what each failed page showed (its ARIA
    snapshot: the test-results folder goes with a CI run's clone), then the end of the
    stacks' logs."""
    marks = ("✓", "✘", "-  ", "°")
    results = [line for line in output.splitlines() if line.strip().startswith(marks)]
    text = "\n".join(results) + "\n\n" + output[-REPORT_CHARS:]
    for context in sorted((WEB / "test-results" / project).glob("*/error-context.md")):
        snapshot = context.read_text(errors="replace")[:6000]
        text += f"\n--- {context.parent.name}/{context.name} ---\n{snapshot}"
    for log in logs:
        if log.exists():
            text += f"\n--- {log.name} (end) ---\n" + log.read_text(errors="replace")[-4000:]
    return text


# --- the tests ----------------------------------------------------------------------------
def test_e2e_sources_typecheck() -> None:
    """The suite is TypeScript strict like the app (Playwright itself only strips types)."""
    check_tools()
    result = subprocess.run(
        [str(TSC), "-p", "e2e/tsconfig.json", "--noEmit"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_journey_refusals_downloads_and_accessibility(browser_run: BrowserRun) -> None:
    """Dev sign-in: the journey with two users, every refusal, the CSV download, axe on every
    page and a keyboard-only upload (web/e2e/*.spec.ts, project `dev`)."""
    # The OpenID project runs beside this one, on its own stack (test_sign_in_with_a_real_
    # openid_provider collects it): most of its time is waiting on the provider's pages.
    if "oidc" not in browser_run.started:
        browser_run.started["oidc"] = start_playwright(browser_run, "oidc")
    code, output = run_playwright(browser_run, "dev")
    print(output)  # each test's line and time: `pytest -rP` shows it for a passing run
    assert code == 0, "the browser suite (dev sign-in) failed:\n" + _report(
        output, "dev", browser_run.dev.state_dir / "up.log"
    )


def test_sign_in_with_a_real_openid_provider(browser_run: BrowserRun) -> None:
    """OIDC: the provider's login page, tokens the gateway and the services accept, an upload,
    a dev link ignored, and what expiry does to a half-filled form (project `oidc`)."""
    stack = browser_run.oidc
    with urllib.request.urlopen(f"{stack.gateway_url}/config.json", timeout=10) as answer:  # noqa: S310
        config = json.load(answer)
    assert config["devSignIn"] is False
    assert config["oidc"] == {
        "authority": browser_run.provider.issuer,
        "clientId": "mlplane-web",
        "scope": "openid",
    }
    # No dev tokens where a real issuer is configured (in a shell set up like the stack).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
    env |= {
        "MLPLANE_STATE_DIR": str(stack.state_dir),
        "MLPLANE_JWT_JWKS_URL": browser_run.provider.jwks_uri,
        "MLPLANE_JWT_ISSUER": browser_run.provider.issuer,
    }
    minted = subprocess.run(
        [sys.executable, "-m", "services.cli", "token", "--role", "data_scientist", "--url"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert minted.returncode != 0, minted.stdout
    assert minted.stdout == ""
    assert "issuer" in minted.stderr, minted.stderr

    code, output = run_playwright(browser_run, "oidc")
    print(output)
    assert code == 0, "the browser suite (OpenID Connect) failed:\n" + _report(
        output, "oidc", browser_run.provider.log, stack.state_dir / "up.log"
    )
