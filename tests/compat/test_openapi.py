"""The native API against its own OpenAPI document, with schemathesis (from PyPI).

schemathesis reads `/v1/openapi.json` (generated from the `rotor-api` types), then sends
requests built from it to a fresh server: valid ones must be accepted, invalid ones
refused with a 4xx, every answer must match its documented status and schema, and
nothing may answer 5xx. The few exceptions, each a rule the document cannot state, are
in schemathesis.toml beside this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT_TOKEN, Server

HERE = Path(__file__).resolve().parent


def test_the_native_api_matches_its_openapi_document():
    server = Server()
    try:
        examples = os.environ.get("ROTOR_SCHEMATHESIS_EXAMPLES", "25")
        cmd = [
            sys.executable, "-m", "schemathesis.cli",
            "--config-file", str(HERE / "schemathesis.toml"),
            "run", f"{server.endpoint}/v1/openapi.json",
            "--header", f"Authorization: Bearer {ROOT_TOKEN}",
            "--max-examples", examples,
            "--seed", os.environ.get("ROTOR_SCHEMATHESIS_SEED", "20261204"),
            "--no-color",
        ]
        # Run where its cache directory is thrown away with the server's.
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                             cwd=server.workdir)
        report = run.stdout + run.stderr
        if run.returncode != 0:
            pytest.fail(f"schemathesis found failures:\n{report[-12000:]}")
    finally:
        server.stop()
