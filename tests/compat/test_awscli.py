"""The real aws cli against a real rotor server."""

from __future__ import annotations

import datetime as dt
import string

from conftest import ACCOUNT_ID, REGION, secret_value


def versions(aws, name, *extra):
    _, out, _ = aws("list-secret-version-ids", "--secret-id", name, *extra, check=True)
    return {v["VersionId"]: sorted(v.get("VersionStages") or []) for v in out["Versions"]}


def test_cli_create_get_put(aws, prefix):
    name, v1 = f"{prefix}/cli", secret_value("-1")
    rc, out, err = aws("create-secret", "--name", name, "--secret-string", v1,
                       "--description", "made by the aws cli")
    assert rc == 0, err
    assert out["Name"] == name
    assert out["ARN"].startswith(f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{name}-")
    first = out["VersionId"]
    _, got, _ = aws("get-secret-value", "--secret-id", name, check=True)
    assert got["SecretString"] == v1 and got["VersionStages"] == ["AWSCURRENT"]
    v2 = secret_value("-2")
    _, put, _ = aws("put-secret-value", "--secret-id", out["ARN"], "--secret-string", v2, check=True)
    assert put["VersionStages"] == ["AWSCURRENT"] and put["VersionId"] != first
    _, got, _ = aws("get-secret-value", "--secret-id", name, check=True)
    assert got["SecretString"] == v2
    _, prev, _ = aws("get-secret-value", "--secret-id", name, "--version-stage", "AWSPREVIOUS", check=True)
    assert prev["SecretString"] == v1 and prev["VersionId"] == first


def test_cli_list_versions_include_deprecated(aws, prefix):
    name = f"{prefix}/cliv"
    _, c, _ = aws("create-secret", "--name", name, "--secret-string", secret_value("-1"), check=True)
    ids = [c["VersionId"]]
    for i in (2, 3):
        _, p, _ = aws("put-secret-value", "--secret-id", name, "--secret-string", secret_value(f"-{i}"), check=True)
        ids.append(p["VersionId"])
    assert versions(aws, name) == {ids[1]: ["AWSPREVIOUS"], ids[2]: ["AWSCURRENT"]}
    assert versions(aws, name, "--include-deprecated") == {
        ids[0]: [], ids[1]: ["AWSPREVIOUS"], ids[2]: ["AWSCURRENT"]}


def test_cli_update_secret_version_stage(aws, prefix):
    name = f"{prefix}/clistage"
    _, c, _ = aws("create-secret", "--name", name, "--secret-string", secret_value("-1"), check=True)
    pending = secret_value("-pending")
    _, p, _ = aws("put-secret-value", "--secret-id", name, "--secret-string", pending,
                  "--version-stages", "AWSPENDING", check=True)
    v1, v2 = c["VersionId"], p["VersionId"]
    assert versions(aws, name) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}
    aws("update-secret-version-stage", "--secret-id", name, "--version-stage", "AWSCURRENT",
        "--move-to-version-id", v2, "--remove-from-version-id", v1, check=True)
    assert versions(aws, name) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT", "AWSPENDING"]}
    _, got, _ = aws("get-secret-value", "--secret-id", name, check=True)
    assert got["SecretString"] == pending


def test_cli_describe_and_list_with_filters(aws, prefix):
    for suffix, tag in (("x", "red"), ("y", "blue")):
        aws("create-secret", "--name", f"{prefix}/{suffix}", "--secret-string", secret_value(),
            "--description", f"cli {suffix}", "--tags", f"Key=colour,Value={tag}", check=True)
    _, d, _ = aws("describe-secret", "--secret-id", f"{prefix}/x", check=True)
    assert d["Name"] == f"{prefix}/x" and d["Description"] == "cli x"
    assert d["Tags"] == [{"Key": "colour", "Value": "red"}]
    assert list(d["VersionIdsToStages"].values()) == [["AWSCURRENT"]]
    assert "CreatedDate" in d and "LastChangedDate" in d
    _, out, _ = aws("list-secrets", "--filters", f"Key=name,Values={prefix}", check=True)
    assert sorted(s["Name"] for s in out["SecretList"]) == [f"{prefix}/x", f"{prefix}/y"]
    _, out, _ = aws("list-secrets", "--filters", f"Key=name,Values={prefix}", "Key=tag-value,Values=blue", check=True)
    assert [s["Name"] for s in out["SecretList"]] == [f"{prefix}/y"]
    _, out, _ = aws("list-secrets", "--filters", f"Key=name,Values={prefix}", "Key=tag-value,Values=!blue", check=True)
    assert [s["Name"] for s in out["SecretList"]] == [f"{prefix}/x"]


def test_cli_delete_and_restore(aws, prefix):
    name, value = f"{prefix}/clidel", secret_value()
    aws("create-secret", "--name", name, "--secret-string", value, check=True)
    t0 = dt.datetime.now(dt.timezone.utc)
    _, d, _ = aws("delete-secret", "--secret-id", name, "--recovery-window-in-days", "7", check=True)
    assert d["Name"] == name
    deletion = d["DeletionDate"]
    # the CLI prints the timestamp as ISO 8601 (or epoch seconds, depending on version)
    when = (dt.datetime.fromtimestamp(deletion, dt.timezone.utc) if isinstance(deletion, (int, float))
            else dt.datetime.fromisoformat(deletion))
    assert abs((when - (t0 + dt.timedelta(days=7))).total_seconds()) < 300
    rc, _, err = aws("get-secret-value", "--secret-id", name)
    assert rc != 0 and "InvalidRequestException" in err
    _, out, _ = aws("list-secrets", "--filters", f"Key=name,Values={prefix}", check=True)
    assert out["SecretList"] == []
    _, out, _ = aws("list-secrets", "--include-planned-deletion", "--filters", f"Key=name,Values={prefix}", check=True)
    assert [s["Name"] for s in out["SecretList"]] == [name]
    _, r, _ = aws("restore-secret", "--secret-id", name, check=True)
    assert r["Name"] == name
    _, got, _ = aws("get-secret-value", "--secret-id", name, check=True)
    assert got["SecretString"] == value


def test_cli_get_random_password(aws):
    _, out, _ = aws("get-random-password", "--password-length", "60", "--exclude-punctuation",
                    "--exclude-characters", "abcXYZ789", "--require-each-included-type", check=True)
    p = out["RandomPassword"]
    assert len(p) == 60
    assert set(p) <= set(string.ascii_letters + string.digits) - set("abcXYZ789")
    assert any(c.islower() for c in p) and any(c.isupper() for c in p) and any(c.isdigit() for c in p)


def test_cli_tag_and_untag(aws, prefix):
    name = f"{prefix}/clitag"
    aws("create-secret", "--name", name, "--secret-string", secret_value(), check=True)
    aws("tag-resource", "--secret-id", name, "--tags", "Key=team,Value=cli", "Key=env,Value=dev", check=True)
    _, d, _ = aws("describe-secret", "--secret-id", name, check=True)
    assert sorted((t["Key"], t["Value"]) for t in d["Tags"]) == [("env", "dev"), ("team", "cli")]
    aws("untag-resource", "--secret-id", name, "--tag-keys", "team", check=True)
    _, d, _ = aws("describe-secret", "--secret-id", name, check=True)
    assert [(t["Key"], t["Value"]) for t in d["Tags"]] == [("env", "dev")]


def test_cli_error_not_found(aws, prefix):
    rc, out, err = aws("get-secret-value", "--secret-id", f"{prefix}/does-not-exist")
    assert rc != 0 and out is None
    assert "ResourceNotFoundException" in err, err


def test_cli_error_invalid_parameter(aws, prefix):
    name, value = f"{prefix}/clibad", secret_value()
    aws("create-secret", "--name", name, "--secret-string", value, check=True)
    rc, out, err = aws("delete-secret", "--secret-id", name, "--recovery-window-in-days", "7",
                       "--force-delete-without-recovery")
    assert rc != 0 and out is None
    assert "InvalidParameterException" in err, err
    _, got, _ = aws("get-secret-value", "--secret-id", name, check=True)
    assert got["SecretString"] == value
