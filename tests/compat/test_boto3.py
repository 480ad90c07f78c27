"""boto3 against a real rotor server: every operation and AWS's semantics."""

from __future__ import annotations

import datetime as dt
import json
import string
import time
import uuid

import botocore
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import (
    ACCESS_KEY_ID,
    ACCOUNT_ID,
    REGION,
    SECRET_ACCESS_KEY,
    make_client,
    secret_value,
)

PUNCT = set(string.punctuation)  # AWS's punctuation set is exactly this one


# --------------------------------------------------------------------------- helpers


def expect_error(call, code, *args, status=400, **kwargs) -> ClientError:
    """Runs `call` and checks it fails with AWS error `code` (a string or a tuple of
    acceptable codes) and HTTP `status`."""
    with pytest.raises(ClientError) as ei:
        call(*args, **kwargs)
    e = ei.value
    codes = (code,) if isinstance(code, str) else code
    got = e.response["Error"]["Code"]
    assert got in codes, f"expected {codes}, got {got}: {e.response}"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, e.response
    return e


def expect_4xx(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as ei:
        call(*args, **kwargs)
    e = ei.value
    status = e.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, f"expected a 4xx, got {status}: {e.response}"
    assert e.response["Error"]["Code"], e.response
    return e


def token() -> str:
    return str(uuid.uuid4())


def stages_by_version(sm, secret_id, include_deprecated=False) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    kw = {"SecretId": secret_id, "IncludeDeprecated": include_deprecated, "MaxResults": 100}
    while True:
        page = sm.list_secret_version_ids(**kw)
        for v in page["Versions"]:
            assert v["VersionId"] not in out, f"version listed twice: {v['VersionId']}"
            out[v["VersionId"]] = sorted(v.get("VersionStages") or [])
        if not page.get("NextToken"):
            return out
        kw["NextToken"] = page["NextToken"]


def list_names(sm, **kw) -> list[str]:
    names = []
    for page in sm.get_paginator("list_secrets").paginate(**kw):
        names += [s["Name"] for s in page["SecretList"]]
    return names


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --------------------------------------------------------------------------- create / get / put


def test_create_and_get_secret_string(sm, prefix):
    name, value = f"{prefix}/db", secret_value()
    r = sm.create_secret(Name=name, SecretString=value, Description="compat db")
    assert r["Name"] == name
    assert r["ARN"].startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}-")
    assert len(r["ARN"]) == len(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}-") + 6
    assert r["VersionId"]
    g = sm.get_secret_value(SecretId=name)
    assert g["SecretString"] == value
    assert "SecretBinary" not in g
    assert g["Name"] == name and g["ARN"] == r["ARN"] and g["VersionId"] == r["VersionId"]
    assert g["VersionStages"] == ["AWSCURRENT"]
    assert isinstance(g["CreatedDate"], dt.datetime)


def test_create_existing_name_is_resource_exists(sm, prefix):
    name = f"{prefix}/dup"
    sm.create_secret(Name=name, SecretString=secret_value())
    expect_error(sm.create_secret, "ResourceExistsException", Name=name, SecretString=secret_value())


def test_create_secret_is_idempotent_with_same_token(sm, prefix):
    name, value, tok = f"{prefix}/idem", secret_value(), token()
    a = sm.create_secret(Name=name, SecretString=value, ClientRequestToken=tok)
    b = sm.create_secret(Name=name, SecretString=value, ClientRequestToken=tok)
    assert (b["ARN"], b["VersionId"]) == (a["ARN"], a["VersionId"])
    assert a["VersionId"] == tok
    assert list(stages_by_version(sm, name, True)) == [tok]
    expect_error(sm.create_secret, "ResourceExistsException",
                 Name=name, SecretString=value, ClientRequestToken=token())


def test_create_without_value_then_put(sm, prefix):
    name = f"{prefix}/novalue"
    sm.create_secret(Name=name, Description="no value yet")
    assert not sm.describe_secret(SecretId=name).get("VersionIdsToStages")
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=name)
    value = secret_value()
    v = sm.put_secret_value(SecretId=name, SecretString=value, VersionStages=["AWSPENDING"])
    # the first version of a secret always gets AWSCURRENT
    assert "AWSCURRENT" in v["VersionStages"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value


def test_put_secret_value_moves_current_and_previous(sm, prefix):
    name = f"{prefix}/labels"
    v1 = sm.create_secret(Name=name, SecretString=secret_value("-1"))["VersionId"]
    val2 = secret_value("-2")
    p2 = sm.put_secret_value(SecretId=name, SecretString=val2)
    v2 = p2["VersionId"]
    assert p2["VersionStages"] == ["AWSCURRENT"]
    assert p2["Name"] == name
    assert stages_by_version(sm, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}
    val3 = secret_value("-3")
    v3 = sm.put_secret_value(SecretId=name, SecretString=val3)["VersionId"]
    # v1 lost AWSPREVIOUS, so it is deprecated and hidden by default
    assert stages_by_version(sm, name) == {v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    assert stages_by_version(sm, name, True) == {v1: [], v2: ["AWSPREVIOUS"], v3: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == val3
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == val2
    assert sm.get_secret_value(SecretId=name, VersionId=v2)["SecretString"] == val2


def test_put_pending_leaves_current_alone(sm, prefix):
    name, cur = f"{prefix}/pending", secret_value("-cur")
    v1 = sm.create_secret(Name=name, SecretString=cur)["VersionId"]
    pend = secret_value("-pending")
    p = sm.put_secret_value(SecretId=name, SecretString=pend, VersionStages=["AWSPENDING"])
    assert p["VersionStages"] == ["AWSPENDING"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == cur
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPENDING")["SecretString"] == pend
    assert stages_by_version(sm, name) == {v1: ["AWSCURRENT"], p["VersionId"]: ["AWSPENDING"]}
    # a second AWSPENDING version takes the label away from the first
    p2 = sm.put_secret_value(SecretId=name, SecretString=secret_value(), VersionStages=["AWSPENDING"])
    assert stages_by_version(sm, name, True) == {
        v1: ["AWSCURRENT"], p["VersionId"]: [], p2["VersionId"]: ["AWSPENDING"]}


def test_put_secret_value_idempotency(sm, prefix):
    name = f"{prefix}/putidem"
    sm.create_secret(Name=name, SecretString=secret_value())
    tok, value = token(), secret_value("-same")
    a = sm.put_secret_value(SecretId=name, SecretString=value, ClientRequestToken=tok)
    before = stages_by_version(sm, name, True)
    b = sm.put_secret_value(SecretId=name, SecretString=value, ClientRequestToken=tok)
    assert a["VersionId"] == b["VersionId"] == tok
    assert stages_by_version(sm, name, True) == before
    expect_error(sm.put_secret_value, "ResourceExistsException",
                 SecretId=name, SecretString=secret_value("-other"), ClientRequestToken=tok)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    assert stages_by_version(sm, name, True) == before


def test_secret_binary_round_trip(sm, prefix):
    name = f"{prefix}/bin"
    data = bytes(range(256)) + b"\xff\xfe\x80compat-secret-" + uuid.uuid4().bytes
    sm.create_secret(Name=name, SecretBinary=data)
    g = sm.get_secret_value(SecretId=name)
    assert g["SecretBinary"] == data
    assert "SecretString" not in g
    data2 = b"\x00\xc3\x28\xa0\xa1" + uuid.uuid4().bytes
    sm.put_secret_value(SecretId=name, SecretBinary=data2)
    assert sm.get_secret_value(SecretId=name)["SecretBinary"] == data2


def test_string_and_binary_together_is_invalid(sm, prefix):
    expect_error(sm.create_secret, "InvalidParameterException",
                 Name=f"{prefix}/both", SecretString=secret_value(), SecretBinary=b"\x01\x02")
    expect_error(sm.describe_secret, "ResourceNotFoundException", SecretId=f"{prefix}/both")
    name = f"{prefix}/both2"
    sm.create_secret(Name=name, SecretString=secret_value())
    expect_error(sm.put_secret_value, "InvalidParameterException",
                 SecretId=name, SecretString=secret_value(), SecretBinary=b"\x01\x02")


def test_value_size_limit(sm, sm_raw, prefix):
    head = secret_value("-")
    exact = head + "x" * (65536 - len(head))
    assert len(exact.encode()) == 65536
    sm.create_secret(Name=f"{prefix}/big", SecretString=exact)
    assert sm.get_secret_value(SecretId=f"{prefix}/big")["SecretString"] == exact
    expect_4xx(sm_raw.create_secret, Name=f"{prefix}/toobig", SecretString=exact + "y")
    expect_error(sm.describe_secret, "ResourceNotFoundException", SecretId=f"{prefix}/toobig")
    expect_4xx(sm_raw.put_secret_value, SecretId=f"{prefix}/big", SecretString=exact + "y")
    assert sm.get_secret_value(SecretId=f"{prefix}/big")["SecretString"] == exact


# --------------------------------------------------------------------------- names and ids


def test_invalid_name_rejected(sm, prefix):
    expect_error(sm.create_secret, ("ValidationException", "InvalidParameterException"),
                 Name=f"{prefix} bad name!", SecretString=secret_value())


def test_name_of_512_chars(sm, prefix):
    name = f"{prefix}/" + "n" * (512 - len(prefix) - 1)
    assert len(name) == 512
    value = secret_value()
    r = sm.create_secret(Name=name, SecretString=value)
    assert r["Name"] == name
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    assert sm.get_secret_value(SecretId=r["ARN"])["SecretString"] == value


def test_path_like_name_with_leading_slash(sm, uid):
    name = f"/dba/passpack/services/mp/mongo/password-{uid}"
    value = secret_value()
    r = sm.create_secret(Name=name, SecretString=value)
    assert r["ARN"].split(":secret:")[1].startswith(name + "-")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    assert sm.describe_secret(SecretId=name)["Name"] == name


def test_secret_id_name_full_arn_partial_arn(sm, prefix):
    name, value = f"{prefix}/ids", secret_value()
    arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
    partial = arn[:-7]
    assert arn[-7] == "-" and partial.endswith(":secret:" + name)
    for sid in (name, arn, partial):
        assert sm.get_secret_value(SecretId=sid)["SecretString"] == value, sid
        d = sm.describe_secret(SecretId=sid)
        assert (d["Name"], d["ARN"]) == (name, arn), sid
    v2 = secret_value()
    sm.put_secret_value(SecretId=partial, SecretString=v2)
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == v2
    # the ARN of another secret with the same name is not this one
    wrong = arn[:-6] + ("zzzzzz" if arn[-6:] != "zzzzzz" else "yyyyyy")
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=wrong)


def test_arn_uses_client_region(endpoint, prefix):
    eu = make_client(endpoint, region="eu-west-1")
    name, value = f"{prefix}/eu", secret_value()
    r = eu.create_secret(Name=name, SecretString=value)
    assert r["ARN"].startswith(f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT_ID}:secret:{name}-")
    assert eu.get_secret_value(SecretId=r["ARN"])["SecretString"] == value


# --------------------------------------------------------------------------- not found


def test_get_unknown_secret(sm, prefix):
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=f"{prefix}/nope")
    expect_error(sm.describe_secret, "ResourceNotFoundException", SecretId=f"{prefix}/nope")
    expect_error(sm.put_secret_value, "ResourceNotFoundException",
                 SecretId=f"{prefix}/nope", SecretString=secret_value())


def test_get_unknown_version_or_stage(sm, prefix):
    name = f"{prefix}/ver"
    sm.create_secret(Name=name, SecretString=secret_value())
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=name, VersionId=token())
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=name, VersionStage="NOSUCHSTAGE")
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=name, VersionStage="AWSPREVIOUS")


# --------------------------------------------------------------------------- update / describe


def test_describe_secret_fields(sm, prefix):
    name = f"{prefix}/desc"
    r = sm.create_secret(Name=name, SecretString=secret_value(), Description="compat description",
                         Tags=[{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}])
    d = sm.describe_secret(SecretId=name)
    assert d["Name"] == name and d["ARN"] == r["ARN"]
    assert d["Description"] == "compat description"
    assert sorted((t["Key"], t["Value"]) for t in d["Tags"]) == [("env", "prod"), ("team", "payments")]
    assert d["VersionIdsToStages"] == {r["VersionId"]: ["AWSCURRENT"]}
    assert isinstance(d["CreatedDate"], dt.datetime) and isinstance(d["LastChangedDate"], dt.datetime)
    assert abs((d["CreatedDate"] - now_utc()).total_seconds()) < 300
    assert "DeletedDate" not in d


def test_update_secret(sm, prefix):
    name, v1 = f"{prefix}/upd", secret_value("-1")
    c = sm.create_secret(Name=name, SecretString=v1, Description="before")
    u = sm.update_secret(SecretId=name, Description="after")
    assert u["Name"] == name and u["ARN"] == c["ARN"]
    assert "VersionId" not in u  # no value, no new version
    d = sm.describe_secret(SecretId=name)
    assert d["Description"] == "after"
    assert d["VersionIdsToStages"] == {c["VersionId"]: ["AWSCURRENT"]}
    v2 = secret_value("-2")
    u2 = sm.update_secret(SecretId=name, SecretString=v2)
    assert u2["VersionId"] and u2["VersionId"] != c["VersionId"]
    assert sm.get_secret_value(SecretId=name)["SecretString"] == v2
    assert stages_by_version(sm, name) == {c["VersionId"]: ["AWSPREVIOUS"], u2["VersionId"]: ["AWSCURRENT"]}
    assert sm.describe_secret(SecretId=name)["Description"] == "after"
    expect_error(sm.update_secret, "ResourceNotFoundException", SecretId=f"{prefix}/nope", Description="x")


# --------------------------------------------------------------------------- UpdateSecretVersionStage


@pytest.fixture
def two_versions(sm, prefix):
    name = f"{prefix}/stage"
    v1 = sm.create_secret(Name=name, SecretString=secret_value("-1"))["VersionId"]
    v2 = sm.put_secret_value(SecretId=name, SecretString=secret_value("-2"),
                             VersionStages=["AWSPENDING"])["VersionId"]
    return name, v1, v2


def test_stage_move_without_remove_from_is_invalid(sm, two_versions):
    name, v1, v2 = two_versions
    expect_error(sm.update_secret_version_stage, "InvalidParameterException",
                 SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v2)
    assert stages_by_version(sm, name) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}


def test_stage_remove_from_wrong_version_is_invalid(sm, two_versions):
    name, v1, v2 = two_versions
    expect_error(sm.update_secret_version_stage, "InvalidParameterException",
                 SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v2)
    expect_error(sm.update_secret_version_stage, "InvalidParameterException",
                 SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=v1)
    assert stages_by_version(sm, name) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}


def test_stage_remove_current_without_move_is_invalid(sm, two_versions):
    name, v1, v2 = two_versions
    expect_error(sm.update_secret_version_stage, "InvalidParameterException",
                 SecretId=name, VersionStage="AWSCURRENT", RemoveFromVersionId=v1)
    assert stages_by_version(sm, name) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}


def test_stage_move_current_sets_previous(sm, two_versions):
    name, v1, v2 = two_versions
    r = sm.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT",
                                       MoveToVersionId=v2, RemoveFromVersionId=v1)
    assert r["Name"] == name
    assert stages_by_version(sm, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT", "AWSPENDING"]}
    assert sm.get_secret_value(SecretId=name)["VersionId"] == v2
    described = sm.describe_secret(SecretId=name)["VersionIdsToStages"]
    assert {k: sorted(v) for k, v in described.items()} == {
        v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT", "AWSPENDING"]}


def test_stage_unknown_version_is_not_found(sm, two_versions):
    name, v1, v2 = two_versions
    expect_error(sm.update_secret_version_stage, "ResourceNotFoundException",
                 SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token(), RemoveFromVersionId=v1)
    expect_error(sm.update_secret_version_stage, "ResourceNotFoundException",
                 SecretId=name, VersionStage="MYLABEL", MoveToVersionId=token())


def test_stage_custom_label_add_and_remove(sm, two_versions):
    name, v1, v2 = two_versions
    sm.update_secret_version_stage(SecretId=name, VersionStage="MYLABEL", MoveToVersionId=v1)
    assert stages_by_version(sm, name) == {v1: ["AWSCURRENT", "MYLABEL"], v2: ["AWSPENDING"]}
    assert sm.get_secret_value(SecretId=name, VersionStage="MYLABEL")["VersionId"] == v1
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=v2)
    # v2 has no label left: deprecated
    assert stages_by_version(sm, name) == {v1: ["AWSCURRENT", "MYLABEL"]}
    assert stages_by_version(sm, name, True) == {v1: ["AWSCURRENT", "MYLABEL"], v2: []}
    sm.update_secret_version_stage(SecretId=name, VersionStage="MYLABEL", RemoveFromVersionId=v1)
    assert stages_by_version(sm, name) == {v1: ["AWSCURRENT"]}
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=name, VersionStage="MYLABEL")


# --------------------------------------------------------------------------- ListSecretVersionIds


def test_list_versions_include_deprecated_105(sm, prefix):
    name = f"{prefix}/many"
    ids = [sm.create_secret(Name=name, SecretString=secret_value("-0"))["VersionId"]]
    for i in range(1, 105):
        ids.append(sm.put_secret_value(SecretId=name, SecretString=secret_value(f"-{i}"))["VersionId"])
    assert len(set(ids)) == 105
    all_versions = stages_by_version(sm, name, include_deprecated=True)
    assert set(all_versions) == set(ids)
    assert all_versions[ids[-1]] == ["AWSCURRENT"] and all_versions[ids[-2]] == ["AWSPREVIOUS"]
    assert all(all_versions[i] == [] for i in ids[:-2])
    assert stages_by_version(sm, name) == {ids[-1]: ["AWSCURRENT"], ids[-2]: ["AWSPREVIOUS"]}
    # pagination of the version list
    page = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True, MaxResults=50)
    assert len(page["Versions"]) == 50 and page.get("NextToken")
    assert sm.get_secret_value(SecretId=name, VersionId=ids[0])["SecretString"].endswith("-0")
    r = sm.list_secret_version_ids(SecretId=name)
    assert r["Name"] == name and r["ARN"].split(":secret:")[1].startswith(name + "-")


# --------------------------------------------------------------------------- ListSecrets


@pytest.fixture
def listing(sm, prefix):
    """Four secrets, created in order a, b, c, d."""
    specs = [
        ("a", "Alpha DB for payments", [{"Key": "team", "Value": "payments"}]),
        ("b", "beta cache", [{"Key": "team", "Value": "search"}, {"Key": "tier", "Value": "gold"}]),
        ("c", "ALPHA queue", []),
        ("d", None, [{"Key": "owner", "Value": "payments-ops"}]),
    ]
    names = []
    for suffix, desc, tags in specs:
        kw = {"Name": f"{prefix}/{suffix}", "SecretString": secret_value(), "Tags": tags}
        if desc:
            kw["Description"] = f"{prefix} {desc}"
        sm.create_secret(**kw)
        names.append(f"{prefix}/{suffix}")
    return names


def f(key, *values):
    return {"Key": key, "Values": list(values)}


def test_list_secrets_name_prefix_is_case_sensitive(sm, prefix, listing):
    assert sorted(list_names(sm, Filters=[f("name", prefix)])) == listing
    assert list_names(sm, Filters=[f("name", prefix.upper())]) == []
    assert list_names(sm, Filters=[f("name", f"{prefix}/b")]) == [f"{prefix}/b"]
    assert sorted(list_names(sm, Filters=[f("name", f"{prefix}/a", f"{prefix}/c")])) == [f"{prefix}/a", f"{prefix}/c"]


def test_list_secrets_description_prefix_ignores_case(sm, prefix, listing):
    got = list_names(sm, Filters=[f("description", f"{prefix.upper()} alpha")])
    assert sorted(got) == [f"{prefix}/a", f"{prefix}/c"]
    assert list_names(sm, Filters=[f("description", f"{prefix} beta")]) == [f"{prefix}/b"]


def test_list_secrets_tag_filters(sm, prefix, listing):
    assert sorted(list_names(sm, Filters=[f("name", prefix), f("tag-key", "team")])) == [f"{prefix}/a", f"{prefix}/b"]
    assert list_names(sm, Filters=[f("name", prefix), f("tag-key", "tier")]) == [f"{prefix}/b"]
    assert sorted(list_names(sm, Filters=[f("name", prefix), f("tag-value", "payments")])) == [f"{prefix}/a", f"{prefix}/d"]
    assert list_names(sm, Filters=[f("name", prefix), f("tag-value", "gold")]) == [f"{prefix}/b"]


def test_list_secrets_negation_and_multiple_filters(sm, prefix, listing):
    assert sorted(list_names(sm, Filters=[f("name", prefix), f("tag-key", "!team")])) == [f"{prefix}/c", f"{prefix}/d"]
    assert sorted(list_names(sm, Filters=[f("name", prefix), f("description", "!" + prefix)])) == [f"{prefix}/d"]
    # AND of three filters
    assert list_names(sm, Filters=[f("name", prefix), f("tag-key", "team"), f("tag-value", "gold")]) == [f"{prefix}/b"]


def test_list_secrets_all_filter(sm, prefix, listing):
    # "all" looks for the words in every attribute: description, tag values, ...
    assert list_names(sm, Filters=[f("name", prefix), f("all", "queue")]) == [f"{prefix}/c"]
    assert list_names(sm, Filters=[f("name", prefix), f("all", "gold")]) == [f"{prefix}/b"]
    assert list_names(sm, Filters=[f("name", prefix), f("all", "nosuchword")]) == []


def test_list_secrets_sort_order(sm, prefix, listing):
    def listed(order):
        r = sm.list_secrets(Filters=[f("name", prefix)], SortOrder=order, MaxResults=100)
        return [(s["Name"], s["CreatedDate"]) for s in r["SecretList"]]

    asc, desc = listed("asc"), listed("desc")
    assert sorted(n for n, _ in asc) == listing
    assert [d for _, d in asc] == sorted(d for _, d in asc)
    assert [d for _, d in desc] == sorted((d for _, d in desc), reverse=True)
    if len({d for _, d in asc}) == len(asc):  # distinct timestamps: order is fully determined
        assert [n for n, _ in asc] == listing
        assert [n for n, _ in desc] == listing[::-1]


def test_list_secrets_entry_fields(sm, prefix, listing):
    r = sm.list_secrets(Filters=[f("name", f"{prefix}/b")])
    (s,) = r["SecretList"]
    assert s["Name"] == f"{prefix}/b"
    assert s["ARN"].startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{prefix}/b-")
    assert s["Description"] == f"{prefix} beta cache"
    assert sorted(t["Key"] for t in s["Tags"]) == ["team", "tier"]
    assert list(s["SecretVersionsToStages"].values()) == [["AWSCURRENT"]]


def test_list_secrets_pagination(sm, prefix):
    names = sorted(f"{prefix}/p{i:02d}" for i in range(7))
    for n in names:
        sm.create_secret(Name=n, SecretString=secret_value())
    seen, pages, kw = [], 0, {"Filters": [f("name", prefix)], "MaxResults": 2}
    while True:
        page = sm.list_secrets(**kw)
        pages += 1
        assert len(page["SecretList"]) <= 2
        seen += [s["Name"] for s in page["SecretList"]]
        if not page.get("NextToken"):
            break
        kw["NextToken"] = page["NextToken"]
        assert pages < 20
    assert sorted(seen) == names and len(seen) == 7
    assert pages >= 4
    # boto3's paginator
    pager = sm.get_paginator("list_secrets").paginate(
        Filters=[f("name", prefix)], PaginationConfig={"PageSize": 3})
    page_names = [[s["Name"] for s in p["SecretList"]] for p in pager]
    assert all(len(p) <= 3 for p in page_names) and len(page_names) >= 3
    flat = [n for p in page_names for n in p]
    assert sorted(flat) == names and len(flat) == 7


def test_list_secrets_bad_next_token(sm):
    expect_error(sm.list_secrets, "InvalidNextTokenException", NextToken="not-a-token-this-server-issued")


# --------------------------------------------------------------------------- deletion


def test_delete_with_recovery_window_and_restore(sm, prefix):
    name, value = f"{prefix}/del", secret_value()
    arn = sm.create_secret(Name=name, SecretString=value)["ARN"]
    t0 = now_utc()
    d = sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    assert d["Name"] == name and d["ARN"] == arn
    assert abs((d["DeletionDate"] - (t0 + dt.timedelta(days=7))).total_seconds()) < 300
    expect_error(sm.get_secret_value, "InvalidRequestException", SecretId=name)
    expect_error(sm.put_secret_value, "InvalidRequestException", SecretId=name, SecretString=secret_value())
    expect_error(sm.update_secret, "InvalidRequestException", SecretId=name, Description="nope")
    desc = sm.describe_secret(SecretId=name)
    # AWS documents DescribeSecret's DeletedDate as "the date the secret is scheduled for deletion"
    assert "DeletedDate" in desc
    assert abs((desc["DeletedDate"] - d["DeletionDate"]).total_seconds()) < 5
    assert list_names(sm, Filters=[f("name", prefix)]) == []
    assert list_names(sm, Filters=[f("name", prefix)], IncludePlannedDeletion=True) == [name]
    # a second secret with the name can't be created while the first is scheduled
    expect_4xx(sm.create_secret, Name=name, SecretString=secret_value())
    r = sm.restore_secret(SecretId=name)
    assert r["Name"] == name and r["ARN"] == arn
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    assert "DeletedDate" not in sm.describe_secret(SecretId=name)
    assert list_names(sm, Filters=[f("name", prefix)]) == [name]


def test_delete_default_window_is_30_days(sm, prefix):
    name = f"{prefix}/del30"
    sm.create_secret(Name=name, SecretString=secret_value())
    t0 = now_utc()
    d = sm.delete_secret(SecretId=name)
    assert abs((d["DeletionDate"] - (t0 + dt.timedelta(days=30))).total_seconds()) < 300
    t1 = now_utc()
    name2 = f"{prefix}/del20"
    sm.create_secret(Name=name2, SecretString=secret_value())
    d2 = sm.delete_secret(SecretId=name2, RecoveryWindowInDays=20)
    assert abs((d2["DeletionDate"] - (t1 + dt.timedelta(days=20))).total_seconds()) < 300


@pytest.mark.parametrize("days", [6, 31, 0])
def test_delete_recovery_window_out_of_range(sm_raw, prefix, days):
    name, value = f"{prefix}/win", secret_value()
    sm_raw.create_secret(Name=name, SecretString=value)
    expect_error(sm_raw.delete_secret, "InvalidParameterException", SecretId=name, RecoveryWindowInDays=days)
    assert sm_raw.get_secret_value(SecretId=name)["SecretString"] == value


def test_delete_window_and_force_together_is_invalid(sm, prefix):
    name, value = f"{prefix}/both", secret_value()
    sm.create_secret(Name=name, SecretString=value)
    expect_error(sm.delete_secret, "InvalidParameterException",
                 SecretId=name, RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True)
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value


def test_force_delete_then_recreate(sm, prefix):
    name = f"{prefix}/force"
    arn = sm.create_secret(Name=name, SecretString=secret_value())["ARN"]
    d = sm.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    assert d["Name"] == name and d["ARN"] == arn
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=name)
    expect_error(sm.describe_secret, "ResourceNotFoundException", SecretId=name)
    assert list_names(sm, Filters=[f("name", prefix)], IncludePlannedDeletion=True) == []
    value = secret_value("-again")
    arn2 = sm.create_secret(Name=name, SecretString=value)["ARN"]
    assert arn2 != arn  # a new secret gets a new suffix
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=arn)


def test_restore_unknown_secret(sm, prefix):
    expect_error(sm.restore_secret, "ResourceNotFoundException", SecretId=f"{prefix}/nope")


# --------------------------------------------------------------------------- tags


def test_tag_and_untag_resource(sm, prefix):
    name = f"{prefix}/tags"
    sm.create_secret(Name=name, SecretString=secret_value(), Tags=[{"Key": "keep", "Value": "yes"}])
    sm.tag_resource(SecretId=name, Tags=[{"Key": "team", "Value": f"{prefix}-team"}, {"Key": "env", "Value": "dev"}])
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name)["Tags"]}
    assert tags == {"keep": "yes", "team": f"{prefix}-team", "env": "dev"}
    assert list_names(sm, Filters=[f("tag-value", f"{prefix}-team")]) == [name]
    assert list_names(sm, Filters=[f("name", prefix), f("tag-key", "env")]) == [name]
    # tagging an existing key replaces its value
    sm.tag_resource(SecretId=name, Tags=[{"Key": "env", "Value": "prod"}])
    tags = {t["Key"]: t["Value"] for t in sm.describe_secret(SecretId=name)["Tags"]}
    assert tags == {"keep": "yes", "team": f"{prefix}-team", "env": "prod"}
    sm.untag_resource(SecretId=name, TagKeys=["team", "env"])
    assert [(t["Key"], t["Value"]) for t in sm.describe_secret(SecretId=name)["Tags"]] == [("keep", "yes")]
    assert list_names(sm, Filters=[f("tag-value", f"{prefix}-team")]) == []
    assert list_names(sm, Filters=[f("name", prefix), f("tag-key", "env")]) == []
    expect_error(sm.tag_resource, "ResourceNotFoundException",
                 SecretId=f"{prefix}/nope", Tags=[{"Key": "a", "Value": "b"}])


# --------------------------------------------------------------------------- BatchGetSecretValue


def test_batch_get_by_id_list_with_unknown(sm, prefix):
    values = {}
    arns = {}
    for i in range(3):
        n = f"{prefix}/batch{i}"
        values[n] = secret_value(f"-{i}")
        arns[n] = sm.create_secret(Name=n, SecretString=values[n])["ARN"]
    missing = f"{prefix}/missing"
    ids = [f"{prefix}/batch0", arns[f"{prefix}/batch1"], f"{prefix}/batch2", missing]
    r = sm.batch_get_secret_value(SecretIdList=ids)
    got = {v["Name"]: v for v in r["SecretValues"]}
    assert set(got) == set(values)
    for n, v in got.items():
        assert v["SecretString"] == values[n]
        assert v["ARN"] == arns[n]
        assert "AWSCURRENT" in v["VersionStages"] and v["VersionId"]
    assert len(r["Errors"]) == 1
    assert r["Errors"][0]["SecretId"] == missing
    assert r["Errors"][0]["ErrorCode"] == "ResourceNotFoundException"


def test_batch_get_by_filters(sm, prefix):
    values = {}
    for i in range(3):
        n = f"{prefix}/bf{i}"
        values[n] = secret_value(f"-{i}")
        sm.create_secret(Name=n, SecretString=values[n],
                         Tags=[{"Key": "grp", "Value": "even" if i % 2 == 0 else "odd"}])
    got, kw = {}, {"Filters": [f("name", prefix)]}
    while True:
        r = sm.batch_get_secret_value(**kw)
        for v in r["SecretValues"]:
            assert v["Name"] not in got
            got[v["Name"]] = v["SecretString"]
        if not r.get("NextToken"):
            break
        kw["NextToken"] = r["NextToken"]
    assert got == values
    r = sm.batch_get_secret_value(Filters=[f("name", prefix), f("tag-value", "even")])
    assert sorted(v["Name"] for v in r["SecretValues"]) == [f"{prefix}/bf0", f"{prefix}/bf2"]


def test_batch_get_ids_and_filters_together_is_invalid(sm, prefix):
    n = f"{prefix}/bx"
    sm.create_secret(Name=n, SecretString=secret_value())
    expect_error(sm.batch_get_secret_value, "InvalidParameterException",
                 SecretIdList=[n], Filters=[f("name", prefix)])


# --------------------------------------------------------------------------- GetRandomPassword


def classes(p):
    return {
        "lower": any(c in string.ascii_lowercase for c in p),
        "upper": any(c in string.ascii_uppercase for c in p),
        "digit": any(c in string.digits for c in p),
        "punct": any(c in PUNCT for c in p),
        "space": " " in p,
    }


def test_random_password_default(sm):
    p = sm.get_random_password()["RandomPassword"]
    assert len(p) == 32
    assert classes(p) == {"lower": True, "upper": True, "digit": True, "punct": True, "space": False}
    assert set(p) <= set(string.ascii_letters + string.digits + string.punctuation)
    assert sm.get_random_password()["RandomPassword"] != p


def test_random_password_length(sm):
    for n in (7, 200, 4096):
        assert len(sm.get_random_password(PasswordLength=n, RequireEachIncludedType=False)["RandomPassword"]) == n


@pytest.mark.parametrize("option,forbidden", [
    ("ExcludeNumbers", set(string.digits)),
    ("ExcludePunctuation", PUNCT),
    ("ExcludeUppercase", set(string.ascii_uppercase)),
    ("ExcludeLowercase", set(string.ascii_lowercase)),
])
def test_random_password_exclude_class(sm, option, forbidden):
    p = sm.get_random_password(PasswordLength=200, **{option: True})["RandomPassword"]
    assert len(p) == 200
    assert not set(p) & forbidden, set(p) & forbidden
    # the other classes are still used
    allowed = set(string.ascii_letters + string.digits + string.punctuation) - forbidden
    assert set(p) <= allowed


def test_random_password_exclude_characters(sm):
    excluded = "abcdefABCDEF012345!@#$%^&*()\"'\\"
    p = sm.get_random_password(PasswordLength=200, ExcludeCharacters=excluded)["RandomPassword"]
    assert len(p) == 200
    assert not set(p) & set(excluded)
    assert classes(p)["punct"] and classes(p)["digit"]


def test_random_password_include_space(sm):
    p = sm.get_random_password(PasswordLength=2000, IncludeSpace=True)["RandomPassword"]
    assert " " in p and len(p) == 2000
    assert set(p) <= set(string.ascii_letters + string.digits + string.punctuation + " ")
    # without IncludeSpace, never a space
    assert " " not in sm.get_random_password(PasswordLength=2000)["RandomPassword"]


def test_random_password_require_each_included_type(sm):
    for _ in range(20):
        p = sm.get_random_password(PasswordLength=4, RequireEachIncludedType=True)["RandomPassword"]
        c = classes(p)
        assert len(p) == 4 and c["lower"] and c["upper"] and c["digit"] and c["punct"], p
    for _ in range(10):
        p = sm.get_random_password(PasswordLength=2, ExcludeNumbers=True, ExcludePunctuation=True,
                                   RequireEachIncludedType=True)["RandomPassword"]
        assert classes(p)["lower"] and classes(p)["upper"], p
    # without the requirement, long single-class passwords are fine
    p = sm.get_random_password(PasswordLength=50, ExcludeLowercase=True, ExcludeUppercase=True,
                               ExcludePunctuation=True, RequireEachIncludedType=False)["RandomPassword"]
    assert set(p) <= set(string.digits) and len(p) == 50


@pytest.mark.parametrize("length", [0, 4097])
def test_random_password_bad_length(sm_raw, length):
    expect_4xx(sm_raw.get_random_password, PasswordLength=length)


def test_random_password_everything_excluded(sm):
    expect_error(sm.get_random_password, "InvalidParameterException",
                 ExcludeNumbers=True, ExcludePunctuation=True, ExcludeUppercase=True, ExcludeLowercase=True)
    expect_error(sm.get_random_password, "InvalidParameterException",
                 ExcludeNumbers=True, ExcludePunctuation=True, ExcludeUppercase=True,
                 ExcludeCharacters=string.ascii_lowercase)


# --------------------------------------------------------------------------- authentication


# Authentication failures are HTTP 401 (issue 3: "unknown principal or bad
# signature: 401"), with AWS's error types so that clients parse them.


def test_wrong_secret_key_is_invalid_signature(endpoint):
    bad = make_client(endpoint, secret_key="not-the-compat-secret-key")
    expect_error(bad.list_secrets, "InvalidSignatureException", status=401)


def test_unknown_access_key_is_unrecognized_client(endpoint):
    bad = make_client(endpoint, key_id="AKIDNOSUCHKEY")
    expect_error(bad.list_secrets, "UnrecognizedClientException", status=401)


def test_unsigned_request_is_rejected(endpoint):
    r = requests.post(endpoint + "/", data=b"{}", timeout=30, headers={
        "X-Amz-Target": "secretsmanager.ListSecrets",
        "Content-Type": "application/x-amz-json-1.1",
    })
    assert r.status_code == 401, (r.status_code, r.text)
    assert "MissingAuthenticationToken" in r.json()["__type"]
    unsigned = make_client(endpoint, signature_version=botocore.UNSIGNED)
    expect_error(unsigned.list_secrets, "MissingAuthenticationTokenException", status=401)


def test_unsigned_request_cannot_read_secrets(sm, endpoint, prefix):
    name = f"{prefix}/guarded"
    value = secret_value()
    sm.create_secret(Name=name, SecretString=value)
    r = requests.post(endpoint + "/", data=json.dumps({"SecretId": name}), timeout=30, headers={
        "X-Amz-Target": "secretsmanager.GetSecretValue",
        "Content-Type": "application/x-amz-json-1.1",
    })
    assert r.status_code == 401 and value not in r.text


# --------------------------------------------------------------------------- raw signed requests with bad input


def signed_post(endpoint, target, body: bytes, region=REGION):
    req = AWSRequest(method="POST", url=endpoint + "/", data=body, headers={
        "X-Amz-Target": f"secretsmanager.{target}",
        "Content-Type": "application/x-amz-json-1.1",
    })
    SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "secretsmanager", region).add_auth(req)
    return requests.post(endpoint + "/", data=body, headers=dict(req.headers.items()), timeout=60)


def assert_json_client_error(r, expected_type=None):
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    body = r.json()
    assert body.get("__type"), body
    assert body.get("Message") or body.get("message"), body
    assert r.headers.get("X-Amzn-ErrorType"), dict(r.headers)
    if expected_type:
        assert body["__type"].split("#")[-1] in expected_type, body
        assert r.headers["X-Amzn-ErrorType"].split(":")[0].split("#")[-1] in expected_type, dict(r.headers)
    return body


def test_signed_raw_request_works(sm, endpoint, prefix):
    """The raw-request helper is right: a well-formed request succeeds."""
    name, value = f"{prefix}/raw", secret_value()
    sm.create_secret(Name=name, SecretString=value)
    r = signed_post(endpoint, "GetSecretValue", json.dumps({"SecretId": name}).encode())
    assert r.status_code == 200, r.text
    assert r.json()["SecretString"] == value


@pytest.mark.parametrize("case", ["malformed-json", "wrong-type", "unknown-op", "bad-base64", "10mb-body"])
def test_bad_input_raw(sm, endpoint, prefix, case):
    name, value = f"{prefix}/keep", secret_value()
    sm.create_secret(Name=name, SecretString=value)
    target, body, expected = {
        "malformed-json": ("CreateSecret", b'{"Name": "x", "SecretString": ', None),
        "wrong-type": ("CreateSecret", json.dumps({"Name": 5, "SecretString": secret_value()}).encode(), None),
        "unknown-op": ("NoSuchOp", b"{}", None),
        "bad-base64": ("CreateSecret", json.dumps({"Name": f"{prefix}/b64", "SecretBinary": "!!!not base64***"}).encode(), None),
        "10mb-body": ("CreateSecret", json.dumps({"Name": f"{prefix}/huge", "SecretString": "z" * (10 * 1024 * 1024)}).encode(), None),
    }[case]
    r = signed_post(endpoint, target, body)
    assert_json_client_error(r, expected)
    # the store is unchanged
    assert sm.get_secret_value(SecretId=name)["SecretString"] == value
    for n in (f"{prefix}/b64", f"{prefix}/huge"):
        expect_error(sm.describe_secret, "ResourceNotFoundException", SecretId=n)
    assert list_names(sm, Filters=[f("name", prefix)]) == [name]


def test_error_response_shape(endpoint, prefix):
    r = signed_post(endpoint, "GetSecretValue", json.dumps({"SecretId": f"{prefix}/nope"}).encode())
    assert r.status_code == 400
    assert_json_client_error(r, ("ResourceNotFoundException",))
    assert r.headers["Content-Type"].startswith("application/x-amz-json-1.1")
    assert "x-amzn-requestid" in {k.lower() for k in r.headers}


# --------------------------------------------------------------------------- AWS's own words


def message(e: ClientError) -> str:
    return e.response["Error"]["Message"]


def test_token_clash_in_aws_words(sm, prefix):
    name, token = f"{prefix}/clash", "c" * 32
    arn = sm.create_secret(Name=name, SecretString="a")["ARN"]
    sm.put_secret_value(SecretId=name, SecretString="b", ClientRequestToken=token)
    e = expect_error(sm.put_secret_value, "ResourceExistsException", SecretId=name,
                     SecretString="other", ClientRequestToken=token)
    assert message(e) == (f"You can't use ClientRequestToken {token} because that value is "
                          f"already in use for a version of secret {arn}.")


def test_moving_awscurrent_without_remove_from_in_aws_words(sm, prefix):
    name = f"{prefix}/move"
    first = sm.create_secret(Name=name, SecretString="a")["VersionId"]
    second = sm.put_secret_value(SecretId=name, SecretString="b", VersionStages=["next"])["VersionId"]
    e = expect_error(sm.update_secret_version_stage, "InvalidParameterException", SecretId=name,
                     VersionStage="AWSCURRENT", MoveToVersionId=second)
    assert message(e) == (
        "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently "
        f"attached to version {first}, so you must explicitly reference that version in "
        "RemoveFromVersionId.")


def test_rotate_secret_checks_its_parameters_before_the_rotation_function(sm_raw, prefix):
    name = f"{prefix}/norotator"
    sm_raw.create_secret(Name=name, SecretString="a")
    e = expect_error(sm_raw.rotate_secret, "InvalidParameterException", SecretId=name,
                     ClientRequestToken="short")
    assert message(e) == "ClientRequestToken must be 32-64 characters long."
    e = expect_error(sm_raw.rotate_secret, "InvalidParameterException", SecretId=name,
                     RotationRules={"AutomaticallyAfterDays": 0})
    assert message(e) == "RotationRules.AutomaticallyAfterDays must be within 1-1000."
    # Only then: no function.
    expect_error(sm_raw.rotate_secret, "InvalidRequestException", SecretId=name)


def test_delete_secret_checks_the_window_first_and_forgets_nothing(sm_raw, prefix):
    name = f"{prefix}/window"
    sm_raw.create_secret(Name=name, SecretString="a")
    e = expect_error(sm_raw.delete_secret, "InvalidParameterException", SecretId=name,
                     RecoveryWindowInDays=3, ForceDeleteWithoutRecovery=True)
    assert message(e) == "RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
    e = expect_error(sm_raw.delete_secret, "InvalidParameterException", SecretId=name,
                     RecoveryWindowInDays=7, ForceDeleteWithoutRecovery=True)
    assert "ForceDeleteWithoutRecovery" in message(e)
    assert sm_raw.get_secret_value(SecretId=name)["SecretString"] == "a"
    # A forced delete of a secret that is not there answers as a delete.
    gone = f"{prefix}/never-was"
    r = sm_raw.delete_secret(SecretId=gone, ForceDeleteWithoutRecovery=True)
    assert r["Name"] == gone and "DeletionDate" in r
    expect_error(sm_raw.describe_secret, "ResourceNotFoundException", SecretId=gone)


def test_put_secret_value_without_a_value_in_aws_words(sm_raw, prefix):
    name = f"{prefix}/novalue"
    sm_raw.create_secret(Name=name, SecretString="a")
    e = expect_error(sm_raw.put_secret_value, "InvalidRequestException", SecretId=name)
    assert message(e) == "You must provide either SecretString or SecretBinary."


def test_batch_get_and_list_filters_in_aws_words(sm_raw, prefix):
    e = expect_error(sm_raw.batch_get_secret_value, "InvalidParameterException")
    assert message(e) == "Either 'SecretIdList' or 'Filters' must be provided, but not both."
    e = expect_error(sm_raw.batch_get_secret_value, "InvalidParameterException",
                     SecretIdList=[f"{prefix}/a"], Filters=[{"Key": "name", "Values": [prefix]}])
    assert message(e) == "Either 'SecretIdList' or 'Filters' must be provided, but not both."
    e = expect_error(sm_raw.batch_get_secret_value, "InvalidParameterException",
                     SecretIdList=[f"{prefix}/a"], MaxResults=5)
    assert message(e) == ("'Filters' not specified. 'Filters' must also be specified when "
                          "'MaxResults' is provided.")
    e = expect_error(sm_raw.list_secrets, "ValidationException",
                     Filters=[{"Key": "name", "Values": [prefix]}, {"Key": "colour", "Values": ["x"]}])
    assert message(e) == (
        "1 validation error detected: Value 'colour' at 'filters.2.member.key' failed to satisfy "
        "constraint: Member must satisfy enum value set: [description, name, tag-key, tag-value, "
        "primary-region, owning-service, all]")


def test_rotation_enabled_only_once_rotation_was_configured(sm, prefix):
    name = f"{prefix}/never-rotated"
    sm.create_secret(Name=name, SecretString="a")
    d = sm.describe_secret(SecretId=name)
    assert "RotationEnabled" not in d and "RotationRules" not in d, d
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"]
    assert [s["Name"] for s in listed] == [name] and "RotationEnabled" not in listed[0]


def test_put_secret_value_answers_its_stages_in_the_order_given(sm, prefix):
    name = f"{prefix}/stage-order"
    sm.create_secret(Name=name, SecretString="a")
    r = sm.put_secret_value(SecretId=name, SecretString="b",
                            VersionStages=["zeta", "AWSCURRENT", "alpha"])
    assert r["VersionStages"] == ["zeta", "AWSCURRENT", "alpha"]


def test_primary_region_filter_is_the_region_a_secret_was_created_in(endpoint, prefix):
    east, west = make_client(endpoint, region="us-east-1"), make_client(endpoint, region="eu-west-1")
    east.create_secret(Name=f"{prefix}/east", SecretString="e")
    west.create_secret(Name=f"{prefix}/west", SecretString="w")
    names = lambda values: sorted(s["Name"] for s in east.list_secrets(Filters=[  # noqa: E731
        {"Key": "name", "Values": [prefix]}, {"Key": "primary-region", "Values": values}])["SecretList"])
    assert names(["eu-west-1"]) == [f"{prefix}/west"]
    assert names(["us-"]) == [f"{prefix}/east"]
    assert names(["!eu-"]) == [f"{prefix}/east"]
    assert names(["ap-"]) == []


def test_all_filter_splits_words_as_aws_does(sm, prefix):
    name = f"{prefix}/creds-store"
    sm.create_secret(Name=name, SecretString="a", Description="Payments Database 892")
    found = lambda value: [s["Name"] for s in sm.list_secrets(Filters=[  # noqa: E731
        {"Key": "name", "Values": [prefix]}, {"Key": "all", "Values": [value]}])["SecretList"]]
    assert found("credsDatabase-892") == [name]
    assert found("PAYMENTS") == [name]
    assert found("credsStaging") == []


def test_last_accessed_date_is_the_day_of_the_last_read(sm, prefix):
    name = f"{prefix}/accessed"
    sm.create_secret(Name=name, SecretString="a")
    assert "LastAccessedDate" not in sm.describe_secret(SecretId=name)
    sm.get_secret_value(SecretId=name)
    deadline = time.monotonic() + 10
    while "LastAccessedDate" not in (d := sm.describe_secret(SecretId=name)):
        assert time.monotonic() < deadline, "the read never showed as LastAccessedDate"
        time.sleep(0.05)
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    assert d["LastAccessedDate"] == today or d["LastAccessedDate"] == today - dt.timedelta(days=1), d
    assert d["LastAccessedDate"].astimezone(dt.timezone.utc).time() == dt.time(0, 0), "day precision"
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": [name]}])["SecretList"]
    assert [s.get("LastAccessedDate") for s in listed] == [d["LastAccessedDate"]]
