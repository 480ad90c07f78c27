"""Alibaba's API under Rotor's policies and audit log, exactly as the AWS API: a narrow
principal's key pair reaches only what its policy allows, through both SDK generations,
and every request is an audit entry with the decision and without the value."""

from __future__ import annotations

import json

import pytest
import requests

from conftest import ROOT_TOKEN, Server, secret_value
from test_alibaba import GENERATIONS, expect_ali_error


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    log = tmp_path_factory.mktemp("audit") / "audit.log"
    server = Server(("--audit-file", str(log)))
    yield server.endpoint, log
    server.stop()


def native(endpoint: str, method: str, path: str, body: dict | None = None) -> dict:
    r = requests.request(method, endpoint + path, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {ROOT_TOKEN}"})
    assert r.status_code in (200, 201), (method, path, r.status_code, r.text)
    return r.json() if r.text else {}


@pytest.mark.parametrize("generation", list(GENERATIONS))
def test_a_narrow_key_reaches_only_what_its_policy_allows(audited, uid, generation):
    endpoint, log = audited
    app, dba = f"/app/svc-{uid}/db", f"/dba/{uid}/root"
    app_value, dba_value = secret_value("app"), secret_value("dba")
    root = GENERATIONS[generation](endpoint)
    root.call("CreateSecret", SecretName=app, SecretData=app_value, VersionId="v1")
    root.call("CreateSecret", SecretName=dba, SecretData=dba_value, VersionId="v1")

    principal = f"svc-{uid}"
    native(endpoint, "POST", "/v1/sys/principals", {"name": principal})
    native(endpoint, "PUT", f"/v1/sys/policies/app-{uid}", {"statements": [
        {"effect": "allow", "capabilities": ["read", "describe", "list"],
         "paths": [f"/app/svc-{uid}/**"]}]})
    native(endpoint, "PUT", f"/v1/sys/principals/{principal}/policies/app-{uid}")
    key = native(endpoint, "POST", "/v1/sys/access-keys", {"principal": principal})
    narrow = GENERATIONS[generation](endpoint, key_id=key["access_key_id"],
                                     secret=key["secret_access_key"])

    assert narrow.call("GetSecretValue", SecretName=app)["SecretData"] == app_value
    for action, params in [
        ("GetSecretValue", {"SecretName": dba}),
        ("DescribeSecret", {"SecretName": dba}),
        ("PutSecretValue", {"SecretName": app, "SecretData": "x", "VersionId": "v2"}),
        ("DeleteSecret", {"SecretName": app, "ForceDeleteWithoutRecovery": "true"}),
        ("CreateSecret", {"SecretName": f"/app/svc-{uid}/new", "SecretData": "x", "VersionId": "v1"}),
    ]:
        e = expect_ali_error(narrow.call, "Forbidden.NoPermission", action, status=403, **params)
        assert dba_value not in str(e)
    listed = narrow.call("ListSecrets", PageSize="100")["SecretList"]["Secret"]
    assert [s["SecretName"] for s in listed] == [app]
    # Nothing the refused calls named changed.
    assert root.call("GetSecretValue", SecretName=app)["VersionId"] == "v1"

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    mine = [e for e in entries if e.get("api") == "alibaba" and e.get("principal") == principal]
    assert {(e["operation"], e["decision"]) for e in mine} >= {
        ("GetSecretValue", "allow"), ("GetSecretValue", "deny"), ("PutSecretValue", "deny")}
    denied = next(e for e in mine if e["operation"] == "GetSecretValue" and e["decision"] == "deny")
    assert denied["secret"] == dba and denied["status"] == 403
    text = log.read_text()
    assert app_value not in text and dba_value not in text


def test_a_bad_signature_is_audited_as_unauthenticated(audited, uid):
    endpoint, log = audited
    bad = GENERATIONS["v3"](endpoint, secret="not-the-secret")
    expect_ali_error(bad.call, "SignatureDoesNotMatch", "GetSecretValue", SecretName=f"/x/{uid}")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(e.get("api") == "alibaba" and e.get("secret") == f"/x/{uid}"
               and e["decision"] == "unauthenticated" for e in entries)


def test_replication_and_events_follow_alibaba_writes(endpoint, uid):
    """A put through Alibaba's API is a put like any other: the replication rule copies
    it into the application's namespace in the same transaction, and the events say so."""
    ali = GENERATIONS["v3"](endpoint)
    source, destination = f"/dba/{uid}/mongo/password", f"/app/mp-{uid}/mongo/password"
    ali.call("CreateSecret", SecretName=source, SecretData="first", VersionId="v1")
    native(endpoint, "POST", "/v1/replication", {
        "name": f"mp-{uid}", "kind": "copy", "source": source, "destination": destination})
    got = ali.call("GetSecretValue", SecretName=destination)
    assert (got["SecretData"], got["VersionId"]) == ("first", "v1")

    ali.call("PutSecretValue", SecretName=source, SecretData="second", VersionId="v2")
    got = ali.call("GetSecretValue", SecretName=destination)
    assert (got["SecretData"], got["VersionId"]) == ("second", "v2")
    assert ali.call("GetSecretValue", SecretName=destination,
                    VersionStage="ACSPrevious")["VersionId"] == "v1"

    events = native(endpoint, "GET", f"/v1/events?prefix=/dba/{uid}/&after=0")["events"]
    puts = [e for e in events if e["kind"] == "version.put" and e["secret"] == source]
    assert [e["detail"]["version"] for e in puts] == ["v1", "v2"], events
    assert all("second" not in json.dumps(e) for e in events)
    applied = native(endpoint, "GET", f"/v1/events?prefix=/app/mp-{uid}/&after=0")["events"]
    assert any(e["kind"] == "replication.applied" and e["detail"]["version"] == "v2"
               for e in applied), applied
