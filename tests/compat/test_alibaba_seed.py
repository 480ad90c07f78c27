"""Seed 001 (Alibaba Cloud KMS Secrets Manager's "Rotation of secrets") run step by step
with Alibaba's own SDKs against the real server: the producer rotates with the V1 SDK
(the generation the `aliyun` CLI of the seed is built on), the consumer reads with the
V3 SDK, and in scenario 2 the credentials are real MariaDB accounts. Then both SDK
generations over HTTPS."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from urllib.parse import urlparse

import pytest
import requests
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client as V3Client
from alibabacloud_tea_openapi.models import Config as V3Config
from darabonba.runtime import RuntimeOptions
from aliyunsdkcore.client import AcsClient
from aliyunsdkkms.request.v20160120 import (
    CreateSecretRequest,
    GetRandomPasswordRequest,
    PutSecretValueRequest,
    UpdateSecretVersionStageRequest,
)

from conftest import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Server
from mariadb import MariaDb

REGION = "cn-hangzhou"


class Producer:
    """The O&M system: calls as `aliyun kms ...` does (signature V1)."""

    def __init__(self, endpoint: str) -> None:
        self.host = urlparse(endpoint).netloc
        self.client = AcsClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION, auto_retry=False)

    def call(self, request, **params) -> dict:
        request.set_endpoint(self.host)
        request.set_protocol_type("http")
        for name, value in params.items():
            getattr(request, f"set_{name}")(value)
        return json.loads(self.client.do_action_with_exception(request))


def consumer(endpoint: str) -> V3Client:
    """The application: GetSecretValue on a schedule (signature V3)."""
    return V3Client(V3Config(access_key_id=ACCESS_KEY_ID, access_key_secret=SECRET_ACCESS_KEY,
                             endpoint=urlparse(endpoint).netloc, protocol="http",
                             region_id=REGION))


def current(app: V3Client, name: str):
    return app.get_secret_value(models.GetSecretValueRequest(secret_name=name)).body


def test_scenario_1_a_single_call_rotates_an_oauth_app_secret(endpoint, uid):
    ops, app = Producer(endpoint), consumer(endpoint)
    name = f"MyOAuthAppSecret-{uid}"
    ops.call(CreateSecretRequest.CreateSecretRequest(), SecretName=name,
             SecretData="initial-app-secret", VersionId="v1")
    assert current(app, name).secret_data == "initial-app-secret"

    # 1. The administrator generates a new App Secret in OAuth 2.0; 2. stores it.
    out = ops.call(PutSecretValueRequest.PutSecretValueRequest(), SecretName=name,
                   SecretData="sample-app-secret", VersionId="v2")
    assert out["VersionStages"]["VersionStage"] == ["ACSCurrent"]

    body = current(app, name)
    assert (body.secret_data, body.version_id) == ("sample-app-secret", "v2")
    assert body.version_stages.version_stage == ["ACSCurrent"]
    previous = app.get_secret_value(models.GetSecretValueRequest(
        secret_name=name, version_stage="ACSPrevious")).body
    assert (previous.secret_data, previous.version_id) == ("initial-app-secret", "v1")


@pytest.fixture(scope="module")
def mariadb():
    db = MariaDb()
    yield db
    db.stop()


def test_scenario_2_several_calls_rotate_a_database_account(endpoint, uid, mariadb):
    ops, app = Producer(endpoint), consumer(endpoint)
    name = f"db_cred-{uid}"
    first_user, first_password = f"alice{uid[:6]}", "Initial-password-1"
    mariadb.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", first_user, first_password)
    ops.call(CreateSecretRequest.CreateSecretRequest(), SecretName=name, VersionId="v1",
             SecretData=json.dumps({"uname": first_user, "pwd": first_password}))

    # The application reads on a schedule and logs in with what it reads, all along.
    seen, refused, failures = [], [], []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                body = current(app, name)
                cred = json.loads(body.secret_data)
                if not mariadb.logs_in(cred["uname"], cred["pwd"]):
                    refused.append(body.version_id)
                if not seen or seen[-1] != body.version_id:
                    seen.append(body.version_id)
            except Exception as e:  # noqa: BLE001 - every failure is reported below
                failures.append(repr(e))
            time.sleep(0.02)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        time.sleep(0.3)
        # 1. A new password from GetRandomPassword.
        password = ops.call(GetRandomPasswordRequest.GetRandomPasswordRequest(),
                            ExcludePunctuation="true")["RandomPassword"]
        assert len(password) == 32 and password.isalnum()

        # 2. The new user name and password, stored as MyPendingLabel.
        second_user = f"bob{uid[:6]}"
        out = ops.call(PutSecretValueRequest.PutSecretValueRequest(), SecretName=name,
                       VersionId="v2", VersionStages='["MyPendingLabel"]',
                       SecretData=json.dumps({"uname": second_user, "pwd": password}))
        assert out["VersionStages"]["VersionStage"] == ["MyPendingLabel"]
        time.sleep(0.3)
        assert current(app, name).version_id == "v1", "a pending version is not current"
        assert not mariadb.logs_in(second_user, password), "not registered yet"

        # 3. Registered with the database: only v2's value opens a session as that user.
        mariadb.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", second_user, password)
        assert mariadb.logs_in(second_user, password)

        # 4. v2 becomes ACSCurrent.
        ops.call(UpdateSecretVersionStageRequest.UpdateSecretVersionStageRequest(),
                 SecretName=name, VersionStage="ACSCurrent", MoveToVersion="v2")
        deadline = time.monotonic() + 10
        while seen[-1:] != ["v2"] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        reader.join()

    assert failures == []
    assert refused == [], "the application read a value that does not log in"
    assert seen == ["v1", "v2"]
    body = current(app, name)
    assert sorted(body.version_stages.version_stage) == ["ACSCurrent", "MyPendingLabel"]
    previous = app.get_secret_value(models.GetSecretValueRequest(
        secret_name=name, version_stage="ACSPrevious")).body
    assert previous.version_id == "v1"


@pytest.fixture(scope="module")
def tls_endpoint(tmp_path_factory):
    """A server of its own that speaks only HTTPS, with a certificate for 127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    server = Server(("--tls-cert", str(cert), "--tls-key", str(key)), ca=str(cert))
    assert server.endpoint.startswith("https://")
    yield server.endpoint, str(cert)
    server.stop()


def test_both_sdk_generations_work_over_https(tls_endpoint, uid):
    endpoint, ca = tls_endpoint
    host = urlparse(endpoint).netloc
    name = f"tls-{uid}"
    v1 = AcsClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION, auto_retry=False, verify=ca)
    request = CreateSecretRequest.CreateSecretRequest()
    request.set_endpoint(host)  # the request classes default to https
    request.set_SecretName(name)
    request.set_SecretData("over-tls")
    request.set_VersionId("v1")
    assert json.loads(v1.do_action_with_exception(request))["VersionId"] == "v1"

    v3 = V3Client(V3Config(access_key_id=ACCESS_KEY_ID, access_key_secret=SECRET_ACCESS_KEY,
                           endpoint=host, protocol="https", region_id=REGION))
    body = v3.get_secret_value_with_options(models.GetSecretValueRequest(secret_name=name),
                                            RuntimeOptions(ca=ca)).body
    assert (body.secret_data, body.version_id) == ("over-tls", "v1")
    # Plain HTTP to the TLS port gets nothing.
    with pytest.raises(Exception):
        requests.post(f"http://{host}/?Action=GetSecretValue", timeout=5).raise_for_status()
