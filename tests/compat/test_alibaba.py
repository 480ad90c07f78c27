"""Alibaba Cloud's official Python SDKs against a real rotor server: the KMS Secrets Manager
API (2016-01-20, RPC style), through both SDK generations, unchanged:

* V3: `alibabacloud-kms20160120` on `alibabacloud_tea_openapi` (ACS3-HMAC-SHA256 in the
  Authorization header; most parameters in the query, SecretData in a form body);
* V1: `aliyun-python-sdk-kms` on `aliyun-python-sdk-core` (HMAC-SHA1 `Signature` in the query,
  every parameter in the query).

Both sign with the suite's dev key pair (ACCESS_KEY_ID / SECRET_ACCESS_KEY). The endpoint is
`127.0.0.1:PORT` over http, region cn-hangzhou. Error codes and shapes follow Alibaba's KMS
documentation; see the Alibaba spec notes for where each one comes from.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import importlib
import json
import os
import re
import string
import subprocess
import urllib.parse
import uuid

import pytest
import requests
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_tea_openapi import models as open_api_models
from botocore.exceptions import ClientError
from Tea.exceptions import TeaException

from conftest import ACCESS_KEY_ID, ROOT_TOKEN, SECRET_ACCESS_KEY, rotor_bin, secret_value

ALI_REGION = "cn-hangzhou"
API_VERSION = "2016-01-20"
PUNCT = set(string.punctuation)

# Keep a developer's own Alibaba Cloud settings out of the clients this module makes.
for _var in list(os.environ):
    if _var.startswith(("ALIBABA_CLOUD_", "ALICLOUD_")):
        del os.environ[_var]


# --------------------------------------------------------------------------- one face for both SDKs


class AliError(Exception):
    """An error answer, whichever SDK generation raised it."""

    def __init__(self, code, status, message):
        super().__init__(f"{code} (HTTP {status}): {message}")
        self.code, self.status, self.message = code, status, message


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


class V3:
    """alibabacloud-kms20160120: `client.<op>(<Op>Request)`; errors are TeaException."""

    generation = "v3"

    def __init__(self, endpoint: str, key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY):
        host = urllib.parse.urlsplit(endpoint).netloc
        self.client = KmsClient(open_api_models.Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=host,
            protocol="http",
            region_id=ALI_REGION,
            connect_timeout=5000,
            read_timeout=60000,
        ))

    def call(self, action: str, **params) -> dict:
        request = getattr(kms_models, f"{action}Request")().from_map(params)
        try:
            response = getattr(self.client, _snake(action))(request)
        except TeaException as e:
            status = getattr(e, "status_code", None) or (getattr(e, "data", None) or {}).get("statusCode")
            raise AliError(e.code, status, e.message) from e
        assert 200 <= response.status_code < 300, response.status_code
        return response.body.to_map()


class V1:
    """aliyun-python-sdk-kms: `AcsClient.do_action_with_exception(<Op>Request)`; errors are
    ServerException."""

    generation = "v1"

    def __init__(self, endpoint: str, key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY):
        parts = urllib.parse.urlsplit(endpoint)
        self.host, self.port = parts.hostname, parts.port
        self.client = AcsClient(key_id, secret, ALI_REGION, port=self.port, auto_retry=False,
                                connect_timeout=5, timeout=60)

    def request(self, action: str, **params):
        module = importlib.import_module(f"aliyunsdkkms.request.v20160120.{action}Request")
        request = getattr(module, f"{action}Request")()
        request.set_endpoint(self.host)
        request.set_protocol_type("http")  # every KMS request class defaults to https
        for key, value in params.items():
            setter = getattr(request, f"set_{key}", None)
            if setter is not None:
                setter(value)
            else:
                request.add_query_param(key, value)
        return request

    def call(self, action: str, **params) -> dict:
        try:
            body = self.client.do_action_with_exception(self.request(action, **params))
        except ServerException as e:
            raise AliError(e.get_error_code(), e.get_http_status(), e.get_error_msg()) from e
        return json.loads(body)


GENERATIONS = {"v3": V3, "v1": V1}


@pytest.fixture(scope="session")
def ali_clients(endpoint):
    return {name: cls(endpoint) for name, cls in GENERATIONS.items()}


@pytest.fixture(params=list(GENERATIONS))
def ali(request, ali_clients):
    """An Alibaba client, once per SDK generation."""
    return ali_clients[request.param]


@pytest.fixture
def v3(ali_clients):
    return ali_clients["v3"]


def expect_ali_error(call, codes, *args, status=None, **kwargs) -> AliError:
    codes = (codes,) if isinstance(codes, str) else tuple(codes)
    with pytest.raises(AliError) as ei:
        call(*args, **kwargs)
    e = ei.value
    assert e.code in codes, f"expected {codes}, got {e}"
    if status is not None:
        assert e.status == status, f"expected HTTP {status}, got {e}"
    return e


def stages_of(ali, name: str, include_deprecated: bool = True) -> dict[str, list[str]]:
    """{VersionId: sorted stages} from ListSecretVersionIds, all pages."""
    out: dict[str, list[str]] = {}
    page = 1
    while True:
        r = ali.call("ListSecretVersionIds", SecretName=name,
                     IncludeDeprecated="true" if include_deprecated else "false",
                     PageNumber=page, PageSize=100)
        entries = (r.get("VersionIds") or {}).get("VersionId") or []
        for v in entries:
            assert v["VersionId"] not in out, f"version listed twice: {v}"
            assert v.get("CreateTime"), v
            out[v["VersionId"]] = sorted((v.get("VersionStages") or {}).get("VersionStage") or [])
        if not entries or len(out) >= int(r["TotalCount"]):
            return out
        page += 1


def version_stages(r: dict) -> list[str]:
    return sorted((r.get("VersionStages") or {}).get("VersionStage") or [])


def parse_time(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create(ali, name: str, value: str | None = None, version: str = "v1", **extra) -> dict:
    return ali.call("CreateSecret", SecretName=name, SecretData=value or secret_value(),
                    VersionId=version, SecretDataType=extra.pop("SecretDataType", "text"), **extra)


# --------------------------------------------------------------------------- create / get


def test_create_and_get_text_secret(ali, prefix):
    name, value = f"{prefix}/ali-db", secret_value(" with space+plus*star~tilde/é")
    r = create(ali, name, value, "v1", Description="compat alibaba db")
    assert r["SecretName"] == name
    assert r["VersionId"] == "v1"
    assert r["RequestId"]
    # V1 names its region (RegionId); V3 does not, and gets the server's default region.
    region = ALI_REGION if ali.generation == "v1" else "us-east-1"
    assert r["Arn"] == f"acs:kms:{region}:123456789012:secret/{name}", r

    g = ali.call("GetSecretValue", SecretName=name)
    assert g["SecretName"] == name
    assert g["SecretData"] == value
    assert g["SecretDataType"] == "text"
    assert g["VersionId"] == "v1"
    assert "ACSCurrent" in version_stages(g)
    assert parse_time(g["CreateTime"]) <= now_utc() + dt.timedelta(minutes=1)

    by_stage = ali.call("GetSecretValue", SecretName=name, VersionStage="ACSCurrent")
    by_version = ali.call("GetSecretValue", SecretName=name, VersionId="v1")
    assert by_stage["SecretData"] == by_version["SecretData"] == value


def test_get_by_arn(ali, prefix):
    name, value = f"{prefix}/ali-arn", secret_value()
    arn = create(ali, name, value)["Arn"]
    assert ali.call("GetSecretValue", SecretName=arn)["SecretData"] == value


def test_binary_secret_round_trip(ali, prefix):
    name = f"{prefix}/ali-bin"
    raw = os.urandom(48) + b"\x00\xff"
    data = base64.b64encode(raw).decode()
    create(ali, name, data, "v1", SecretDataType="binary")
    g = ali.call("GetSecretValue", SecretName=name)
    assert g["SecretDataType"] == "binary"
    assert base64.b64decode(g["SecretData"]) == raw


def test_create_existing_name_is_resource_exist(ali, prefix):
    name = f"{prefix}/ali-dup"
    create(ali, name, secret_value())
    expect_ali_error(create, "Rejected.ResourceExist", ali, name, secret_value(), "v9", status=409)


# --------------------------------------------------------------------------- versions and stages


def test_put_pending_then_promote_to_current(ali, prefix):
    name, old, new = f"{prefix}/ali-stage", secret_value("-old"), secret_value("-new")
    create(ali, name, old, "v1")

    p = ali.call("PutSecretValue", SecretName=name, VersionId="v2", SecretData=new,
                 VersionStages=json.dumps(["MyPendingLabel"]))
    assert p["SecretName"] == name and p["VersionId"] == "v2"
    assert version_stages(p) == ["MyPendingLabel"]
    # a pending version does not change what is current
    assert ali.call("GetSecretValue", SecretName=name)["SecretData"] == old
    assert ali.call("GetSecretValue", SecretName=name, VersionStage="MyPendingLabel")["SecretData"] == new

    u = ali.call("UpdateSecretVersionStage", SecretName=name, VersionStage="ACSCurrent", MoveToVersion="v2")
    assert u["SecretName"] == name

    g = ali.call("GetSecretValue", SecretName=name)
    assert g["SecretData"] == new and g["VersionId"] == "v2"
    assert version_stages(g) == ["ACSCurrent", "MyPendingLabel"]
    prev = ali.call("GetSecretValue", SecretName=name, VersionStage="ACSPrevious")
    assert prev["SecretData"] == old and prev["VersionId"] == "v1"
    assert stages_of(ali, name) == {"v1": ["ACSPrevious"], "v2": ["ACSCurrent", "MyPendingLabel"]}


def test_put_without_stages_moves_current_to_previous(ali, prefix):
    name = f"{prefix}/ali-put"
    create(ali, name, secret_value(), "v1")
    new = secret_value("-2")
    p = ali.call("PutSecretValue", SecretName=name, VersionId="v2", SecretData=new)
    assert version_stages(p) == ["ACSCurrent"]
    assert ali.call("GetSecretValue", SecretName=name)["SecretData"] == new
    assert stages_of(ali, name) == {"v1": ["ACSPrevious"], "v2": ["ACSCurrent"]}
    ali.call("PutSecretValue", SecretName=name, VersionId="v3", SecretData=secret_value("-3"))
    # v1 lost its last stage: deprecated, listed only with IncludeDeprecated=true
    assert stages_of(ali, name) == {"v1": [], "v2": ["ACSPrevious"], "v3": ["ACSCurrent"]}
    assert stages_of(ali, name, include_deprecated=False) == {"v2": ["ACSPrevious"], "v3": ["ACSCurrent"]}


def test_put_same_version_is_idempotent(ali, prefix):
    name, value = f"{prefix}/ali-idem", secret_value()
    create(ali, name, secret_value(), "v1")
    ali.call("PutSecretValue", SecretName=name, VersionId="v2", SecretData=value)
    ali.call("PutSecretValue", SecretName=name, VersionId="v2", SecretData=value)  # same data: success
    e = expect_ali_error(ali.call, (
        "Rejected.ResourceExist", "InvalidParameter",
    ), "PutSecretValue", SecretName=name, VersionId="v2", SecretData=secret_value("-different"))
    assert 400 <= e.status < 500
    assert ali.call("GetSecretValue", SecretName=name, VersionId="v2")["SecretData"] == value


# --------------------------------------------------------------------------- describe / list / update / tags


def test_describe_secret_fields(ali, prefix):
    name = f"{prefix}/ali-describe"
    tags = [{"TagKey": "team", "TagValue": "core"}, {"TagKey": "env", "TagValue": "dev"}]
    c = create(ali, name, secret_value(), "v1", Description="described", Tags=json.dumps(tags))
    d = ali.call("DescribeSecret", SecretName=name, FetchTags="true")
    assert d["SecretName"] == name
    assert d["Arn"] == c["Arn"]
    assert d["Description"] == "described"
    assert d["SecretType"] == "Generic"
    created, updated = parse_time(d["CreateTime"]), parse_time(d["UpdateTime"])
    assert abs(created - now_utc()) < dt.timedelta(minutes=5) and updated >= created
    assert not d.get("PlannedDeleteTime")
    got = sorted(((t["TagKey"], t["TagValue"]) for t in (d.get("Tags") or {}).get("Tag") or []))
    assert got == sorted((t["TagKey"], t["TagValue"]) for t in tags)


def test_update_secret_description(ali, prefix):
    name = f"{prefix}/ali-update"
    create(ali, name, secret_value(), "v1", Description="before")
    u = ali.call("UpdateSecret", SecretName=name, Description="after")
    assert u["SecretName"] == name
    assert ali.call("DescribeSecret", SecretName=name)["Description"] == "after"


def test_tag_and_untag_resource(ali, prefix):
    name = f"{prefix}/ali-tags"
    create(ali, name, secret_value())
    ali.call("TagResource", SecretName=name,
             Tags=json.dumps([{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": "2"}]))
    tags = lambda: sorted((t["TagKey"], t["TagValue"]) for t in  # noqa: E731
                          (ali.call("DescribeSecret", SecretName=name, FetchTags="true").get("Tags") or {})
                          .get("Tag") or [])
    assert tags() == [("a", "1"), ("b", "2")]
    ali.call("UntagResource", SecretName=name, TagKeys=json.dumps(["a"]))
    assert tags() == [("b", "2")]


def test_list_secrets_paging(ali, prefix):
    mine = {f"{prefix}/ali-list-{i}" for i in range(5)}
    for name in sorted(mine):
        create(ali, name, secret_value())
    first = ali.call("ListSecrets", PageNumber=1, PageSize=2)
    total = int(first["TotalCount"])
    assert total >= len(mine)
    assert int(first["PageNumber"]) == 1 and int(first["PageSize"]) == 2
    seen: list[str] = []
    pages = (total + 1) // 2
    for page in range(1, pages + 1):
        r = first if page == 1 else ali.call("ListSecrets", PageNumber=page, PageSize=2)
        assert int(r["TotalCount"]) == total
        assert int(r["PageNumber"]) == page
        entries = (r.get("SecretList") or {}).get("Secret") or []
        assert len(entries) == (2 if page < pages else total - 2 * (pages - 1)), r
        for s in entries:
            assert s["SecretName"] and s.get("CreateTime"), s
        seen += [s["SecretName"] for s in entries]
    assert len(seen) == len(set(seen)) == total
    assert mine <= set(seen)
    # past the end: an empty page, not an error
    beyond = ali.call("ListSecrets", PageNumber=pages + 1, PageSize=2)
    assert not ((beyond.get("SecretList") or {}).get("Secret") or [])


# --------------------------------------------------------------------------- delete / restore


def test_delete_with_recovery_window_and_restore(ali, prefix):
    name, value = f"{prefix}/ali-del", secret_value()
    create(ali, name, value)
    r = ali.call("DeleteSecret", SecretName=name, RecoveryWindowInDays="7")
    assert r["SecretName"] == name
    planned = parse_time(r["PlannedDeleteTime"])
    assert abs(planned - (now_utc() + dt.timedelta(days=7))) < dt.timedelta(minutes=5), r
    assert parse_time(ali.call("DescribeSecret", SecretName=name)["PlannedDeleteTime"]) == planned
    # Alibaba documents Rejected.ResourceInDeleteWindow (409) for a secret in its delete window;
    # what GetSecretValue answers is not documented, so either documented code is accepted.
    e = expect_ali_error(ali.call, ("Rejected.ResourceInDeleteWindow", "Forbidden.ResourceNotFound"),
                         "GetSecretValue", SecretName=name)
    assert e.status in (404, 409)
    # creating the name again while it waits is refused as well
    expect_ali_error(create, ("Rejected.ResourceInDeleteWindow", "Rejected.ResourceExist"), ali, name)

    restored = ali.call("RestoreSecret", SecretName=name)
    assert restored["SecretName"] == name
    assert ali.call("GetSecretValue", SecretName=name)["SecretData"] == value
    assert not ali.call("DescribeSecret", SecretName=name).get("PlannedDeleteTime")


def test_delete_default_window_is_30_days(ali, prefix):
    name = f"{prefix}/ali-del30"
    create(ali, name, secret_value())
    r = ali.call("DeleteSecret", SecretName=name)
    assert abs(parse_time(r["PlannedDeleteTime"]) - (now_utc() + dt.timedelta(days=30))) < dt.timedelta(minutes=5)


def test_force_delete_without_recovery(ali, prefix):
    name = f"{prefix}/ali-force"
    create(ali, name, secret_value())
    ali.call("DeleteSecret", SecretName=name, ForceDeleteWithoutRecovery="true")
    expect_ali_error(ali.call, "Forbidden.ResourceNotFound", "GetSecretValue", SecretName=name, status=404)
    expect_ali_error(ali.call, "Forbidden.ResourceNotFound", "RestoreSecret", SecretName=name, status=404)
    value = secret_value("-again")
    create(ali, name, value, "v1")
    assert ali.call("GetSecretValue", SecretName=name)["SecretData"] == value


# --------------------------------------------------------------------------- random passwords


def test_random_password_default_length_32(ali):
    pw = ali.call("GetRandomPassword")["RandomPassword"]
    assert len(pw) == 32


def test_random_password_exclude_characters(ali):
    excluded = "abcdefABCDEF012345!@#$%"
    for _ in range(5):
        pw = ali.call("GetRandomPassword", PasswordLength="64", ExcludeCharacters=excluded)["RandomPassword"]
        assert len(pw) == 64
        assert not set(pw) & set(excluded), pw


@pytest.mark.parametrize("option,forbidden", [
    ("ExcludeLowercase", set(string.ascii_lowercase)),
    ("ExcludeUppercase", set(string.ascii_uppercase)),
    ("ExcludeNumbers", set(string.digits)),
    ("ExcludePunctuation", PUNCT),
])
def test_random_password_exclude_class(ali, option, forbidden):
    pw = ali.call("GetRandomPassword", PasswordLength="128", **{option: "true"})["RandomPassword"]
    assert len(pw) == 128
    assert not set(pw) & forbidden, pw


def test_random_password_require_each_included_type(ali):
    for _ in range(20):
        pw = ali.call("GetRandomPassword", PasswordLength="8", RequireEachIncludedType="true")["RandomPassword"]
        assert len(pw) == 8
        for cls in (set(string.ascii_lowercase), set(string.ascii_uppercase), set(string.digits), PUNCT):
            assert set(pw) & cls, pw


# --------------------------------------------------------------------------- errors


def test_unknown_secret_is_resource_not_found(ali, prefix):
    for action in ("GetSecretValue", "DescribeSecret", "ListSecretVersionIds", "DeleteSecret"):
        expect_ali_error(ali.call, "Forbidden.ResourceNotFound", action, SecretName=f"{prefix}/nope", status=404)


def test_unknown_version_or_stage(ali, prefix):
    name = f"{prefix}/ali-nover"
    create(ali, name, secret_value())
    expect_ali_error(ali.call, ("Forbidden.ResourceNotFound", "InvalidParameter"),
                     "GetSecretValue", SecretName=name, VersionId="v-missing")
    expect_ali_error(ali.call, ("Forbidden.ResourceNotFound", "InvalidParameter"),
                     "GetSecretValue", SecretName=name, VersionStage="NoSuchStage")


def test_missing_required_parameter(ali, prefix):
    e = expect_ali_error(ali.call, ("MissingParameter", "InvalidParameter"),
                         "CreateSecret", SecretName=f"{prefix}/ali-novalue", VersionId="v1")
    assert e.status == 400


def test_wrong_access_key_secret(endpoint, prefix):
    name = f"{prefix}/ali-badsig"
    # V3 reports the server's code as it is.
    bad3 = V3(endpoint, secret="not-the-compat-secret-key")
    expect_ali_error(bad3.call, "SignatureDoesNotMatch", "GetSecretValue", SecretName=name, status=400)
    expect_ali_error(create, "SignatureDoesNotMatch", bad3, name, secret_value(), status=400)
    # Alibaba ends the message with the string it signed, which the V1 SDK compares with
    # its own to report InvalidAccessKeySecret; Rotor withholds that string (it can hold
    # a secret value), so the V1 SDK reports the server's code as it is too.
    bad1 = V1(endpoint, secret="not-the-compat-secret-key")
    expect_ali_error(bad1.call, "SignatureDoesNotMatch", "GetSecretValue", SecretName=name, status=400)
    # nothing was created
    expect_ali_error(V3(endpoint).call, "Forbidden.ResourceNotFound", "DescribeSecret", SecretName=name)


@pytest.mark.parametrize("generation", list(GENERATIONS))
def test_unknown_access_key_id(endpoint, generation):
    bad = GENERATIONS[generation](endpoint, key_id="AKIDNOSUCHKEY")
    expect_ali_error(bad.call, "InvalidAccessKeyId.NotFound", "ListSecrets", status=404)


# --------------------------------------------------------------------------- cross-API: AWS <-> Alibaba


def test_boto3_secret_reads_back_through_alibaba(sm, ali, prefix):
    name, value = f"{prefix}/from-aws", secret_value()
    r = sm.create_secret(Name=name, SecretString=value)
    g = ali.call("GetSecretValue", SecretName=name, VersionStage="ACSCurrent")
    assert g["SecretData"] == value
    assert g["SecretDataType"] == "text"
    assert g["VersionId"] == r["VersionId"]
    assert version_stages(g) == ["ACSCurrent"]
    # a rotation-style put through AWS shows up with Alibaba's stage names
    new = sm.put_secret_value(SecretId=name, SecretString=secret_value("-2"))
    assert stages_of(ali, name) == {r["VersionId"]: ["ACSPrevious"], new["VersionId"]: ["ACSCurrent"]}


def test_alibaba_secret_reads_back_through_boto3(sm, ali, prefix):
    name, value = f"{prefix}/from-ali", secret_value()
    create(ali, name, value, "v1")
    g = sm.get_secret_value(SecretId=name)
    assert g["SecretString"] == value
    assert g["VersionId"] == "v1"
    assert g["VersionStages"] == ["AWSCURRENT"]
    assert g["Name"] == name
    ali.call("PutSecretValue", SecretName=name, VersionId="v2", SecretData=secret_value("-2"))
    versions = {v["VersionId"]: sorted(v["VersionStages"])
                for v in sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]}
    assert versions == {"v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT"]}


def test_binary_secret_crosses_apis(sm, v3, prefix):
    name, raw = f"{prefix}/bin-cross", os.urandom(40)
    create(v3, name, base64.b64encode(raw).decode(), "v1", SecretDataType="binary")
    g = sm.get_secret_value(SecretId=name)
    assert g["SecretBinary"] == raw and "SecretString" not in g
    other, raw2 = f"{prefix}/bin-cross-aws", os.urandom(40)
    sm.create_secret(Name=other, SecretBinary=raw2)
    a = v3.call("GetSecretValue", SecretName=other)
    assert a["SecretDataType"] == "binary" and base64.b64decode(a["SecretData"]) == raw2


def test_alibaba_delete_is_seen_by_boto3(sm, ali, prefix):
    name = f"{prefix}/ali-del-aws"
    create(ali, name, secret_value())
    ali.call("DeleteSecret", SecretName=name, RecoveryWindowInDays="7")
    d = sm.describe_secret(SecretId=name)
    assert "DeletedDate" in d
    ali.call("RestoreSecret", SecretName=name)
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)
    with pytest.raises(ClientError) as ei:
        sm.create_secret(Name=name, SecretString=secret_value())
    assert ei.value.response["Error"]["Code"] == "ResourceExistsException"


# --------------------------------------------------------------------------- raw signed requests


def _enc(s: str) -> str:
    """RFC 3986 percent-encoding over UTF-8, as both SDKs canonicalize: `-_.~` and
    alphanumerics stay; space is %20, `*` is %2A, `+` is %2B, `/` is %2F."""
    return urllib.parse.quote(s, safe="-_.~")


def _canonical_query(params: dict[str, str]) -> str:
    return "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(params.items()))


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def v3_signed(endpoint: str, action: str, query: dict[str, str], body: bytes = b"", *,
              content_sha256: str | None = None, date: str | None = None, nonce: str | None = None,
              key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY) -> tuple[str, dict[str, str], bytes]:
    """An ACS3-HMAC-SHA256 request exactly as alibabacloud_tea_openapi builds it. The signature
    covers `content_sha256`, which defaults to the body's real hash."""
    host = urllib.parse.urlsplit(endpoint).netloc
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": API_VERSION,
        "x-acs-date": date or _iso(now_utc()),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "accept": "application/json",
        "x-acs-content-sha256": content_sha256 or hashlib.sha256(body).hexdigest(),
    }
    if body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    signed = sorted(headers)
    canonical_request = "\n".join([
        "POST",
        "/",
        _canonical_query(query),
        "".join(f"{k}:{headers[k].strip()}\n" for k in signed),
        ";".join(signed),
        headers["x-acs-content-sha256"],
    ])
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"ACS3-HMAC-SHA256 Credential={key_id},"
                                f"SignedHeaders={';'.join(signed)},Signature={signature}")
    url = endpoint + "/" + ("?" + _canonical_query(query) if query else "")
    return url, headers, body


def v3_post(prepared) -> requests.Response:
    url, headers, body = prepared
    return requests.post(url, headers=headers, data=body, timeout=60)


def v1_signed(action: str, params: dict[str, str], *, timestamp: str | None = None, nonce: str | None = None,
              key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY,
              method: str = "POST") -> dict[str, str]:
    """HMAC-SHA1 RPC parameters exactly as aliyunsdkcore builds them."""
    p = dict(params)
    p.update({
        "Action": action,
        "Version": API_VERSION,
        "Format": "JSON",
        "RegionId": ALI_REGION,
        "Timestamp": timestamp or _iso(now_utc()),
        "SignatureMethod": "HMAC-SHA1",
        "SignatureType": "",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "AccessKeyId": key_id,
    })
    to_sign = f"{method}&%2F&" + _enc(_canonical_query(p))
    p["Signature"] = base64.b64encode(hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    return p


def v1_post(endpoint: str, params: dict[str, str]) -> requests.Response:
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params.items())
    return requests.post(f"{endpoint}/?{query}", timeout=60)


def assert_ali_error_body(r: requests.Response, code, status=None) -> dict:
    codes = (code,) if isinstance(code, str) else tuple(code)
    assert 400 <= r.status_code < 600, (r.status_code, r.text[:500])
    if status is not None:
        assert r.status_code == status, (r.status_code, r.text[:500])
    assert not r.headers.get("Content-Type", "").startswith("text/xml"), r.headers
    body = r.json()
    assert body["Code"] in codes, body
    assert body["Message"] and body["RequestId"], body
    return body


def test_raw_v3_request_works(v3, endpoint, prefix):
    """The raw V3 signer is right: a well-formed request succeeds, query and form body together."""
    name, value = f"{prefix}/raw3", secret_value(" a+b*c~")
    body = urllib.parse.urlencode({"SecretData": value}).encode()
    r = v3_post(v3_signed(endpoint, "CreateSecret", {"SecretName": name, "VersionId": "v1"}, body))
    assert r.status_code == 200, r.text
    assert r.json()["SecretName"] == name
    r = v3_post(v3_signed(endpoint, "GetSecretValue", {"SecretName": name}))
    assert r.status_code == 200, r.text
    assert r.json()["SecretData"] == value
    assert v3.call("GetSecretValue", SecretName=name)["SecretData"] == value


def test_raw_v3_payload_hash_mismatch_is_refused(v3, endpoint, prefix):
    name = f"{prefix}/raw3-hash"
    signed_body = urllib.parse.urlencode({"SecretData": "what was signed"}).encode()
    sent_body = urllib.parse.urlencode({"SecretData": "what was swapped in"}).encode()
    url, headers, _ = v3_signed(endpoint, "CreateSecret", {"SecretName": name, "VersionId": "v1"}, signed_body)
    r = requests.post(url, headers=headers, data=sent_body, timeout=60)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.json()["Code"], r.text
    expect_ali_error(v3.call, "Forbidden.ResourceNotFound", "DescribeSecret", SecretName=name)


def test_raw_v3_replayed_nonce_is_refused(endpoint, prefix):
    prepared = v3_signed(endpoint, "ListSecrets", {"PageSize": "1"})
    first = v3_post(prepared)
    assert first.status_code == 200, first.text
    assert_ali_error_body(v3_post(prepared), "SignatureNonceUsed", 400)


def test_raw_v3_stale_date_is_refused(endpoint):
    stale = _iso(now_utc() - dt.timedelta(minutes=20))
    assert_ali_error_body(v3_post(v3_signed(endpoint, "ListSecrets", {}, date=stale)),
                          "InvalidTimeStamp.Expired", 400)


def test_raw_v1_request_works(v3, endpoint, prefix):
    name, value = f"{prefix}/raw1", secret_value(" a+b*c~/")
    r = v1_post(endpoint, v1_signed("CreateSecret", {"SecretName": name, "SecretData": value, "VersionId": "v1"}))
    assert r.status_code == 200, r.text
    r = v1_post(endpoint, v1_signed("GetSecretValue", {"SecretName": name}))
    assert r.status_code == 200, r.text
    assert r.json()["SecretData"] == value


def test_raw_v1_replayed_request_is_refused(v3, endpoint, prefix):
    name, value = f"{prefix}/raw1-replay", secret_value()
    v3.call("CreateSecret", SecretName=name, SecretData=value, VersionId="v1")
    params = v1_signed("GetSecretValue", {"SecretName": name})
    first = v1_post(endpoint, params)
    assert first.status_code == 200 and first.json()["SecretData"] == value, first.text
    body = assert_ali_error_body(v1_post(endpoint, params), "SignatureNonceUsed", 400)
    assert value not in json.dumps(body)


def test_raw_v1_stale_timestamp_is_refused(v3, endpoint, prefix):
    name, value = f"{prefix}/raw1-stale", secret_value()
    v3.call("CreateSecret", SecretName=name, SecretData=value, VersionId="v1")
    stale = _iso(now_utc() - dt.timedelta(minutes=20))
    r = v1_post(endpoint, v1_signed("GetSecretValue", {"SecretName": name}, timestamp=stale))
    body = assert_ali_error_body(r, "InvalidTimeStamp.Expired", 400)
    assert value not in json.dumps(body)


def test_raw_v1_signature_mismatch_withholds_the_string_to_sign(endpoint, prefix):
    """A 400 SignatureDoesNotMatch whose Message has the colon the V1 SDK splits at, but
    not the string the server signed: in V1 that holds SecretData."""
    value = secret_value("never-echoed")
    params = v1_signed("PutSecretValue", {"SecretName": f"{prefix}/sts", "VersionId": "v2",
                                          "SecretData": value}, secret="wrong-secret")
    r = v1_post(endpoint, params)
    body = assert_ali_error_body(r, "SignatureDoesNotMatch", 400)
    assert ":" in body["Message"], body
    assert value not in r.text and _enc(value) not in r.text, r.text
    unsigned = {k: v for k, v in params.items() if k != "Signature"}
    assert _enc(_canonical_query(unsigned)) not in r.text, r.text


def test_error_response_shape(endpoint, prefix):
    r = v3_post(v3_signed(endpoint, "GetSecretValue", {"SecretName": f"{prefix}/nope"}))
    body = assert_ali_error_body(r, "Forbidden.ResourceNotFound", 404)
    assert {"RequestId", "HostId", "Code", "Message", "Recommend"} <= set(body), body
    assert r.headers["Content-Type"].startswith("application/json"), r.headers


def test_unsigned_alibaba_request_is_refused(v3, endpoint, prefix):
    name, value = f"{prefix}/unsigned", secret_value()
    v3.call("CreateSecret", SecretName=name, SecretData=value, VersionId="v1")
    r = requests.post(f"{endpoint}/?SecretName={_enc(name)}", timeout=30, headers={
        "x-acs-action": "GetSecretValue", "x-acs-version": API_VERSION})
    assert 400 <= r.status_code < 500 and value not in r.text, (r.status_code, r.text)
    params = {"Action": "GetSecretValue", "Version": API_VERSION, "Format": "JSON", "SecretName": name}
    r = requests.post(f"{endpoint}/?{_canonical_query(params)}", timeout=30)
    assert 400 <= r.status_code < 500 and value not in r.text, (r.status_code, r.text)


# --------------------------------------------------------------------------- rotation, listing, tags


def test_rotation_through_alibaba_is_the_same_engine(sm, server, endpoint, ali, uid, prefix):
    """Created with boto3, rotated with Alibaba's RotateSecret, read with the rotor CLI and
    Alibaba's SDK: every view agrees."""
    from test_rotation import create_rotator, stages, wait_rotated

    arn = create_rotator(endpoint, f"ali-random-{uid}", "random", {"length": 24, "field": "api_key"})
    name, old = f"{prefix}/ali-rotated", json.dumps({"client_id": "svc-9", "api_key": "old-key"})
    first = sm.create_secret(Name=name, SecretString=old)["VersionId"]
    sm.rotate_secret(SecretId=name, RotationLambdaARN=arn, RotateImmediately=False,
                     RotationRules={"AutomaticallyAfterDays": 30})

    out = ali.call("RotateSecret", SecretName=name, VersionId=f"alirot-{uid}")
    assert out["VersionId"] == f"alirot-{uid}" and out["SecretName"] == name, out
    d = wait_rotated(sm, name, f"alirot-{uid}", server)
    assert stages(d) == {first: ["AWSPREVIOUS"], f"alirot-{uid}": ["AWSCURRENT"]}

    got = ali.call("GetSecretValue", SecretName=name)
    assert got["VersionId"] == f"alirot-{uid}"
    assert got["VersionStages"]["VersionStage"] == ["ACSCurrent"]
    new = json.loads(got["SecretData"])
    assert new["client_id"] == "svc-9" and new["api_key"] != "old-key" and len(new["api_key"]) == 24
    assert ali.call("GetSecretValue", SecretName=name, VersionStage="ACSPrevious")["SecretData"] == old
    assert sm.get_secret_value(SecretId=name)["SecretString"] == got["SecretData"]
    env = dict(os.environ, ROTOR_ADDR=endpoint, ROTOR_TOKEN=ROOT_TOKEN)
    cli = subprocess.run([str(rotor_bin()), "secret", "get", name, "--output", "json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    shown = json.loads(cli.stdout)
    assert (shown["value"], shown["version_id"], shown["stages"]) == (
        got["SecretData"], f"alirot-{uid}", ["AWSCURRENT"]), shown


def test_rotation_policy_is_the_secrets_schedule(sm, endpoint, ali, uid, prefix):
    from test_rotation import create_rotator

    arn = create_rotator(endpoint, f"ali-policy-{uid}", "random", {"length": 16})
    name = f"{prefix}/ali-policy"
    sm.create_secret(Name=name, SecretString="v")
    # Without a rotator there is nothing to schedule.
    expect_ali_error(ali.call, "InvalidParameter", "UpdateSecretRotationPolicy", SecretName=name,
                     EnableAutomaticRotation="true", RotationInterval="7d")
    sm.rotate_secret(SecretId=name, RotationLambdaARN=arn, RotateImmediately=False,
                     RotationRules={"AutomaticallyAfterDays": 30})
    ali.call("UpdateSecretRotationPolicy", SecretName=name, EnableAutomaticRotation="true",
             RotationInterval="604800s")
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] and d["RotationRules"]["AutomaticallyAfterDays"] == 7, d
    out = ali.call("DescribeSecret", SecretName=name)
    assert out["AutomaticRotation"] == "Enabled" and out["RotationInterval"] == "604800s", out
    expect_ali_error(ali.call, "InvalidParameter", "UpdateSecretRotationPolicy", SecretName=name,
                     EnableAutomaticRotation="true", RotationInterval="7w")
    ali.call("UpdateSecretRotationPolicy", SecretName=name, EnableAutomaticRotation="false")
    assert not sm.describe_secret(SecretId=name).get("RotationEnabled")
    assert ali.call("DescribeSecret", SecretName=name)["AutomaticRotation"] == "Disabled"


def test_create_with_automatic_rotation_is_refused_before_anything_is_stored(ali, prefix):
    name = f"{prefix}/ali-autorot"
    expect_ali_error(create, "InvalidParameter", ali, name, EnableAutomaticRotation="true",
                     RotationInterval="7d")
    expect_ali_error(ali.call, "Forbidden.ResourceNotFound", "DescribeSecret", SecretName=name)


def test_list_secrets_filters(ali, uid, prefix):
    create(ali, f"{prefix}/filter-a", Description=f"alpha {uid}")
    create(ali, f"{prefix}/filter-b", Tags=json.dumps([{"TagKey": f"team-{uid}", "TagValue": "blue"}]))
    names = lambda out: sorted(s["SecretName"] for s in out["SecretList"]["Secret"])  # noqa: E731
    by_name = ali.call("ListSecrets", Filters=json.dumps([{"Key": "SecretName", "Values": [f"{prefix}/filter-"]}]))
    assert names(by_name) == [f"{prefix}/filter-a", f"{prefix}/filter-b"] and by_name["TotalCount"] == 2
    by_tag = ali.call("ListSecrets", FetchTags="true",
                      Filters=json.dumps([{"Key": "TagKey", "Values": [f"team-{uid}"]}]))
    assert names(by_tag) == [f"{prefix}/filter-b"]
    assert by_tag["SecretList"]["Secret"][0]["Tags"]["Tag"] == [{"TagKey": f"team-{uid}", "TagValue": "blue"}]
    by_description = ali.call("ListSecrets", Filters=json.dumps([{"Key": "Description", "Values": ["alpha"]}]))
    assert f"{prefix}/filter-a" in names(by_description)
    expect_ali_error(ali.call, "InvalidParameter", "ListSecrets",
                     Filters=json.dumps([{"Key": "Colour", "Values": ["x"]}]))
    expect_ali_error(ali.call, "InvalidParameter", "ListSecrets", Filters="not json")


def test_list_tag_resources(v3, endpoint, prefix):
    name = f"{prefix}/ali-tags"
    create(v3, name, Tags=json.dumps([{"TagKey": "env", "TagValue": "prod"}, {"TagKey": "team", "TagValue": "db"}]))
    r = v3_post(v3_signed(endpoint, "ListTagResources", {
        "RegionId": ALI_REGION, "ResourceType": "secret", "ResourceId.1": name, "Tag.1.Key": "env"}))
    assert r.status_code == 200, r.text
    assert r.json()["TagResources"]["TagResource"] == [
        {"ResourceId": name, "ResourceType": "secret", "TagKey": "env", "TagValue": "prod"}]
    r = v3_post(v3_signed(endpoint, "ListTagResources", {"ResourceType": "key", "ResourceId.1": "k"}))
    assert_ali_error_body(r, "InvalidParameter", 400)


def test_a_v1_operation_is_the_signed_one_not_an_unsigned_header(v3, endpoint, prefix):
    """The V1 SDK sends x-acs-action unsigned: a request signed for DescribeSecret with the
    header changed to GetSecretValue must not return the value."""
    name, value = f"{prefix}/ali-spoof", secret_value()
    create(v3, name, value)
    params = v1_signed("DescribeSecret", {"SecretName": name})
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params.items())
    r = requests.post(f"{endpoint}/?{query}", timeout=60,
                      headers={"x-acs-action": "GetSecretValue", "x-acs-version": API_VERSION})
    assert value not in r.text, r.text
    assert_ali_error_body(r, "InvalidParameter", 400)


def test_raw_v1_get_request_works_and_its_method_is_signed(endpoint, v3, prefix):
    name, value = f"{prefix}/ali-get", secret_value()
    create(v3, name, value)
    params = v1_signed("GetSecretValue", {"SecretName": name}, method="GET")
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params.items())
    r = requests.get(f"{endpoint}/?{query}", timeout=60)
    assert r.status_code == 200 and r.json()["SecretData"] == value, r.text
    # The same signature sent with POST does not match.
    params = v1_signed("GetSecretValue", {"SecretName": name}, method="GET")
    assert_ali_error_body(v1_post(endpoint, params), "SignatureDoesNotMatch", 400)


def test_alibabas_name_rules_apply_on_its_api_only(sm, ali, prefix):
    long_name = f"{prefix}/" + "n" * (193 - len(prefix) - 1)
    reserved = f"acs/{prefix}"
    for name in (long_name, reserved):
        expect_ali_error(create, "InvalidParameter", ali, name)
        expect_ali_error(ali.call, "Forbidden.ResourceNotFound", "DescribeSecret", SecretName=name)
    # The AWS API keeps its own rules: both names are fine there, and Alibaba's API reads them.
    for name in (long_name, reserved):
        sm.create_secret(Name=name, SecretString="made-on-aws")
        assert ali.call("GetSecretValue", SecretName=name)["SecretData"] == "made-on-aws"
