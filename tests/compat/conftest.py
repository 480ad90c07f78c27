"""AWS-client compatibility suite: the real boto3 and aws cli against a real `rotor` server.

Run from the repository root:

    cargo build -p rotor
    python3 -m pip install -r tests/compat/requirements.txt
    python3 -m pytest tests/compat -q

The server binary is $ROTOR_BIN, or else target/debug/rotor in this repository.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
ACCESS_KEY_ID = "AKIDCOMPAT"
SECRET_ACCESS_KEY = "compat-secret-key"
ROOT_TOKEN = "compat-root-token"
LISTEN_RE = re.compile(r"rotor listening on (https?://127\.0\.0\.1:\d+)")
STARTUP_TIMEOUT = 30.0

# Keep the developer's own AWS settings out of every client this suite makes.
_AWS_TMP = tempfile.mkdtemp(prefix="rotor-compat-aws-")
_EMPTY_CONFIG = os.path.join(_AWS_TMP, "config")
_EMPTY_CREDENTIALS = os.path.join(_AWS_TMP, "credentials")
for _p in (_EMPTY_CONFIG, _EMPTY_CREDENTIALS):
    Path(_p).write_text("")
for _var in list(os.environ):
    if _var.startswith("AWS_"):
        del os.environ[_var]
os.environ.update(
    AWS_CONFIG_FILE=_EMPTY_CONFIG,
    AWS_SHARED_CREDENTIALS_FILE=_EMPTY_CREDENTIALS,
    AWS_EC2_METADATA_DISABLED="true",
    AWS_PAGER="",
)


def rotor_bin() -> Path:
    return Path(os.environ.get("ROTOR_BIN") or REPO_ROOT / "target" / "debug" / "rotor")


class Server:
    """`rotor server --dev` on a free port; `extra_args` such as --tls-cert, and `ca`, the
    certificate that verifies it when it serves TLS."""

    def __init__(self, extra_args: tuple[str, ...] = (), ca: str | None = None) -> None:
        self.ca = ca
        binary = rotor_bin()
        if not binary.is_file():
            pytest.fail(f"rotor binary not found at {binary}: run `cargo build -p rotor` or set ROTOR_BIN")
        self.workdir = tempfile.mkdtemp(prefix="rotor-compat-server-")
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        self._stderr = open(self.stderr_path, "wb")
        env = dict(os.environ)
        env.update(
            ROTOR_DEV_ROOT_TOKEN=ROOT_TOKEN,
            ROTOR_DEV_ACCESS_KEY_ID=ACCESS_KEY_ID,
            ROTOR_DEV_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        )
        self.proc = subprocess.Popen(
            [str(binary), "server", "--dev", "--listen", "127.0.0.1:0", *extra_args],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        # Drain stdout for the server's whole life so that it never blocks on a full pipe.
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        try:
            self.endpoint = self._wait_listening()
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def stderr_text(self) -> str:
        self._stderr.flush()
        return Path(self.stderr_path).read_text(errors="replace")[-20000:]

    def _fail(self, why: str) -> None:
        pytest.fail(
            f"{why}\n--- server stdout ---\n" + "\n".join(self.stdout_lines[-50:])
            + f"\n--- server stderr ---\n{self.stderr_text()}"
        )

    def _wait_listening(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail(f"server did not print 'rotor listening on ...' within {STARTUP_TIMEOUT}s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=5)
                self._fail(f"server exited with code {self.proc.returncode} before listening")
            m = LISTEN_RE.search(line)
            if m:
                return m.group(1)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"server exited with code {self.proc.returncode} while waiting for /healthz")
            try:
                r = requests.get(self.endpoint + "/healthz", timeout=2, verify=self.ca or True)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}: {r.text[:200]}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.05)  # readiness polling interval
        self._fail(f"GET /healthz never returned 200 (last: {last})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._stderr.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def endpoint(server) -> str:
    return server.endpoint


def client_config(**kw) -> Config:
    # One attempt: a 5xx must show up as a failure, not be retried away.
    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=60,
        **kw,
    )


def make_client(endpoint: str, *, region: str = REGION, key_id: str = ACCESS_KEY_ID,
                secret_key: str = SECRET_ACCESS_KEY, **config):
    return boto3.session.Session().client(
        "secretsmanager",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret_key,
        config=client_config(**config),
    )


@pytest.fixture(scope="session")
def sm(endpoint):
    return make_client(endpoint)


@pytest.fixture(scope="session")
def sm_raw(endpoint):
    """A client that sends whatever it is given: botocore's own checks are off, so the
    server's validation is what gets tested."""
    return make_client(endpoint, parameter_validation=False)


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def prefix(uid) -> str:
    """A name prefix no other test uses."""
    return f"compat-{uid}"


def secret_value(tag: str = "") -> str:
    return f"compat-secret-{uuid.uuid4()}{tag}"


@pytest.fixture
def aws(endpoint):
    def run(*args: str, check: bool = False):
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
            AWS_CONFIG_FILE=_EMPTY_CONFIG,
            AWS_SHARED_CREDENTIALS_FILE=_EMPTY_CREDENTIALS,
            AWS_PAGER="",
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
        )
        cmd = ["aws", "--endpoint-url", endpoint, "--region", REGION, "--output", "json",
               "secretsmanager", *args]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        out = json.loads(p.stdout) if p.stdout.strip() else None
        if check:
            assert p.returncode == 0, f"{cmd} failed ({p.returncode}): {p.stderr}"
        return p.returncode, out, p.stderr

    return run
