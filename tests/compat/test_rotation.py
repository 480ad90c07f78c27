"""Rotation through the AWS API: a rotation function written for AWS Lambda runs
unmodified under Rotor's `lambda` rotator, driven by the real boto3 and aws cli.

The functions live in lambda_functions/: rotate_app_key.py has the structure of AWS's
published rotation templates; the others wrap it to be slow, to fail, or to probe
their credentials. Each rotates a password of a "target system", a JSON file whose
path is in the secret's value and which lists the passwords it accepts.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from conftest import ACCESS_KEY_ID, ACCOUNT_ID, REGION, ROOT_TOKEN, Server, client_config, make_client

LAMBDA_DIR = Path(__file__).resolve().parent / "lambda_functions"
ROTATION_TIMEOUT = 30.0  # a lambda rotation takes four Python runs, about 2 s here
POLL = 0.1  # status polling interval
DAY = dt.timedelta(days=1)


# --------------------------------------------------------------------------- helpers


def expect_error(call, code, **kwargs) -> ClientError:
    """Runs `call` and checks it fails with AWS error `code` (a string or a tuple of
    acceptable codes) and HTTP 400."""
    with pytest.raises(ClientError) as ei:
        call(**kwargs)
    e = ei.value
    codes = (code,) if isinstance(code, str) else code
    assert e.response["Error"]["Code"] in codes, f"expected {codes}, got {e.response}"
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
    return e


def create_rotator(endpoint: str, name: str, kind: str, config: dict) -> str:
    """Registers a rotator through the native API; returns the Lambda ARN naming it."""
    r = requests.post(endpoint + "/v1/sys/rotators", timeout=30,
                      headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
                      json={"name": name, "type": kind, "config": config})
    assert r.status_code == 201, (r.status_code, r.text)
    assert r.json()["name"] == name and r.json()["type"] == kind, r.text
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"


def lambda_rotator(endpoint: str, name: str, module: str) -> str:
    return create_rotator(endpoint, name, "lambda",
                          {"handler": f"{module}.lambda_handler", "code_dir": str(LAMBDA_DIR)})


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.timezone.utc)


def stages(description: dict) -> dict[str, list[str]]:
    return {v: sorted(s) for v, s in description.get("VersionIdsToStages", {}).items()}


def wait_for(sm, secret_id: str, done, what: str, server: Server | None = None,
             timeout: float = ROTATION_TIMEOUT) -> dict:
    """Polls DescribeSecret until `done(description)`; returns that description."""
    deadline = time.monotonic() + timeout
    while True:
        d = sm.describe_secret(SecretId=secret_id)
        if done(d):
            return d
        if time.monotonic() > deadline:
            logs = f"\n--- server stderr ---\n{server.stderr_text()}" if server else ""
            pytest.fail(f"{what}: not within {timeout}s; last DescribeSecret: {d}{logs}")
        time.sleep(POLL)


def rotation_error(sm, secret_id: str) -> str | None:
    """DescribeSecret's RotorRotationError, which Rotor adds to AWS's shape: botocore
    drops fields its model lacks, so this reads the raw answer."""
    raw = {}

    def keep(http_response, **_):
        raw.update(json.loads(http_response.content))

    sm.meta.events.register("after-call.secrets-manager.DescribeSecret", keep)
    try:
        sm.describe_secret(SecretId=secret_id)
    finally:
        sm.meta.events.unregister("after-call.secrets-manager.DescribeSecret", keep)
    assert raw.get("Name"), raw
    return raw.get("RotorRotationError")


def rotated_to(token: str, since: dt.datetime | None = None):
    """Whether a rotation to version `token` has finished: AWSCURRENT on it, no
    AWSPENDING left anywhere, and LastRotatedDate recorded (after `since`)."""
    def done(d: dict) -> bool:
        s = stages(d)
        last = d.get("LastRotatedDate")
        return (s.get(token) == ["AWSCURRENT"]
                and not any("AWSPENDING" in v for v in s.values())
                and last is not None and (since is None or last > since))
    return done


def wait_rotated(sm, secret_id, token, server, since=None) -> dict:
    return wait_for(sm, secret_id, rotated_to(token, since), f"rotation to {token}", server)


def wait_file(path: Path, timeout: float = ROTATION_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(POLL)


class Target:
    """The system whose password a rotation changes: a JSON file of the passwords it
    accepts for one user."""

    def __init__(self, directory: Path, username: str, password: str) -> None:
        self.path = directory / "target.json"
        self.path.write_text(json.dumps({"username": username, "passwords": [password]}))

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def accepts(self, username: str, password: str) -> bool:
        t = self.read()
        return t["username"] == username and password in t["passwords"]


@pytest.fixture
def target(tmp_path) -> Target:
    return Target(tmp_path, "app", "initial-password")


def app_secret(target: Target, **extra) -> str:
    return json.dumps({"username": "app", "password": "initial-password",
                       "target": str(target.path), **extra})


# --------------------------------------------------------------------------- lambda rotation


def test_lambda_rotation_function_runs_unmodified(sm, server, endpoint, uid, prefix, target):
    arn = lambda_rotator(endpoint, f"app-key-{uid}", "rotate_app_key")
    name, old = f"{prefix}/app-key", app_secret(target)
    created = sm.create_secret(Name=name, SecretString=old)
    before = sm.describe_secret(SecretId=name)
    assert "RotationEnabled" not in before, "AWS leaves it out until rotation is configured"
    assert "LastRotatedDate" not in before and "NextRotationDate" not in before

    r = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                         RotationRules={"AutomaticallyAfterDays": 30})
    assert (r["ARN"], r["Name"]) == (created["ARN"], name)
    token = r["VersionId"]
    assert token and token != created["VersionId"]

    d = wait_rotated(sm, name, token, server)
    assert stages(d) == {created["VersionId"]: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert sm.get_secret_value(SecretId=name)["VersionId"] == token
    assert new["username"] == "app" and new["target"] == str(target.path)
    assert new["password"] != "initial-password" and len(new["password"]) == 32
    assert not set(new["password"]) & set("/@\"'\\"), "ExcludeCharacters was not honoured"
    prev = sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")
    assert (prev["SecretString"], prev["VersionId"]) == (old, created["VersionId"])
    assert target.accepts("app", new["password"]), target.read()
    assert target.accepts("app", "initial-password"), "setSecret must keep the current password working"

    assert d["RotationEnabled"] is True
    assert d["RotationLambdaARN"] == arn
    assert d["RotationRules"]["AutomaticallyAfterDays"] == 30
    last = utc(d["LastRotatedDate"])
    assert abs((dt.datetime.now(dt.timezone.utc) - last).total_seconds()) < 60, last
    nxt = utc(d["NextRotationDate"])
    assert nxt.date() == last.date() + 30 * DAY, (last, nxt)


@pytest.mark.parametrize("rules, check", [
    ({"ScheduleExpression": "rate(10 days)", "Duration": "3h"},
     lambda nxt, now: nxt == dt.datetime.combine(now.date() + 10 * DAY, dt.time(0), dt.timezone.utc)),
    ({"ScheduleExpression": "cron(0 16 ? * MON *)"},
     lambda nxt, now: (nxt.weekday(), nxt.hour, nxt.minute, nxt.second) == (0, 16, 0, 0)
     and dt.timedelta(0) < nxt - now <= 7 * DAY),
], ids=["rate-days-with-duration", "cron-weekly"])
def test_schedule_expressions_are_accepted_and_echoed(sm, endpoint, uid, prefix, rules, check):
    arn = create_rotator(endpoint, f"sched-{uid}", "random", {})
    name = f"{prefix}/scheduled"
    sm.create_secret(Name=name, SecretString="unrotated")
    now = dt.datetime.now(dt.timezone.utc)
    r = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn, RotationRules=rules,
                         RotateImmediately=False)
    assert "VersionId" not in r, "RotateImmediately=False must not start a rotation"
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is True and d["RotationLambdaARN"] == arn
    assert {k: d["RotationRules"].get(k) for k in rules} == rules, d["RotationRules"]
    nxt = utc(d["NextRotationDate"])
    assert check(nxt, now), f"NextRotationDate {nxt} does not follow {rules} from {now}"
    assert stages(d) == {sm.get_secret_value(SecretId=name)["VersionId"]: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "unrotated"


@pytest.mark.parametrize("rules, code, words", [
    ({"ScheduleExpression": "rate(2 hours)"}, "InvalidParameterException", ["ScheduleExpression", "hours"]),
    ({"AutomaticallyAfterDays": 30, "ScheduleExpression": "rate(10 days)"},
     "InvalidParameterException", ["AutomaticallyAfterDays", "ScheduleExpression"]),
    ({"ScheduleExpression": "cron(* * * * ? *)"}, "InvalidParameterException", ["ScheduleExpression", "minute"]),
], ids=["rate-under-4-hours", "days-and-expression", "cron-every-minute"])
def test_bad_rotation_rules_are_refused(sm, endpoint, uid, prefix, rules, code, words):
    arn = create_rotator(endpoint, f"bad-rules-{uid}", "random", {})
    name = f"{prefix}/badrules"
    sm.create_secret(Name=name, SecretString="unrotated")
    e = expect_error(sm.rotate_secret, code, SecretId=name, RotationLambdaARN=arn, RotationRules=rules)
    message = e.response["Error"]["Message"]
    for w in words:
        assert w.lower() in message.lower(), f"the message should name {w!r}: {message}"
    d = sm.describe_secret(SecretId=name)
    assert "RotationEnabled" not in d and "RotationRules" not in d and "RotationLambdaARN" not in d


def test_unknown_rotation_function_is_invalid_request(sm, prefix):
    name = f"{prefix}/nofunc"
    sm.create_secret(Name=name, SecretString="unrotated")
    e = expect_error(sm.rotate_secret, "InvalidRequestException", SecretId=name,
                     RotationLambdaARN=f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:no-such-function",
                     RotationRules={"AutomaticallyAfterDays": 30})
    assert "no-such-function" in e.response["Error"]["Message"]
    # Nothing configured: no function to rotate with, no rotation to cancel.
    expect_error(sm.rotate_secret, "InvalidRequestException", SecretId=name)
    expect_error(sm.cancel_rotate_secret, "InvalidRequestException", SecretId=name)
    d = sm.describe_secret(SecretId=name)
    assert "RotationEnabled" not in d and "RotationLambdaARN" not in d
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "unrotated"


def test_rotation_in_progress_then_cancelled(sm, server, endpoint, uid, prefix, target, tmp_path):
    slow = lambda_rotator(endpoint, f"slow-{uid}", "slow_rotation")
    marker = tmp_path / "sleeping"
    name = f"{prefix}/slow"
    created = sm.create_secret(Name=name, SecretString=app_secret(
        target, sleeping_marker=str(marker), sleep_seconds=2))
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=slow,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    wait_file(marker)  # the function is inside createSecret, before it stores anything

    d = sm.describe_secret(SecretId=name)
    assert stages(d) == {created["VersionId"]: ["AWSCURRENT"], token: ["AWSPENDING"]}
    assert d["RotationEnabled"] is True
    expect_error(sm.get_secret_value, "ResourceNotFoundException", SecretId=name, VersionStage="AWSPENDING")
    expect_error(sm.rotate_secret, "InvalidRequestException", SecretId=name)
    expect_error(sm.rotate_secret, "InvalidRequestException", SecretId=name, RotationLambdaARN=slow,
                 RotationRules={"AutomaticallyAfterDays": 7})

    c = sm.cancel_rotate_secret(SecretId=name)
    assert (c["ARN"], c["Name"], c["VersionId"]) == (created["ARN"], name, token)
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is False and "NextRotationDate" not in d

    # The function wakes up, sees that rotation is off (as AWS's templates check) and
    # stops; nothing more runs.
    wait_file(Path(str(marker) + ".done"))
    assert Path(str(marker) + ".done").read_text() == "ValueError"
    d = sm.describe_secret(SecretId=name)
    assert d["RotationEnabled"] is False
    assert stages(d).get(created["VersionId"]) == ["AWSCURRENT"]
    assert sm.get_secret_value(SecretId=name)["VersionId"] == created["VersionId"]
    assert target.read()["passwords"] == ["initial-password"]
    assert "LastRotatedDate" not in d

    # Rotation can be turned on again: it rotates now, here with another rotator.
    arn = create_rotator(endpoint, f"random-{uid}", "random", {"field": "password"})
    again = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    assert again != token
    d = wait_rotated(sm, name, again, server)
    assert d["RotationEnabled"] is True and stages(d)[created["VersionId"]] == ["AWSPREVIOUS"]


@pytest.fixture(scope="module")
def retrying_server():
    """A server of its own that gives a failing rotation 2 attempts 0.2 s apart (the
    default, 5 attempts 30 s apart, is too slow to watch)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROTOR_ROTATION_MAX_ATTEMPTS", "2")
        mp.setenv("ROTOR_ROTATION_BACKOFF_MS", "200")
        s = Server()
    yield s
    s.stop()


def test_failed_rotation_leaves_awscurrent_alone(retrying_server, uid, prefix, target):
    sm = make_client(retrying_server.endpoint)
    failing = lambda_rotator(retrying_server.endpoint, f"failing-{uid}", "failing_rotation")
    name, old = f"{prefix}/failing", app_secret(target)
    created = sm.create_secret(Name=name, SecretString=old)
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=failing,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]

    wait_for(sm, name, lambda d: rotation_error(sm, name) is not None, "the rotation's final failure",
             retrying_server)
    error = rotation_error(sm, name)
    d = sm.describe_secret(SecretId=name)
    assert "setSecret" in error and "ConnectionRefusedError" in error, error
    assert "10.0.0.1" not in error, f"the exception's message leaked into the API: {error}"
    # createSecret had stored the new version; AWSCURRENT never moved.
    assert stages(d) == {created["VersionId"]: ["AWSCURRENT"], token: ["AWSPENDING"]}
    g = sm.get_secret_value(SecretId=name)
    assert (g["SecretString"], g["VersionId"]) == (old, created["VersionId"])
    assert target.read()["passwords"] == ["initial-password"]
    assert d["RotationEnabled"] is True and "LastRotatedDate" not in d

    # Taking AWSPENDING off the half-made version, as AWS tells users to, makes way
    # for a new rotation.
    good = lambda_rotator(retrying_server.endpoint, f"app-key-{uid}", "rotate_app_key")
    sm.update_secret_version_stage(SecretId=name, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    again = sm.rotate_secret(SecretId=name, RotationLambdaARN=good)["VersionId"]
    d = wait_for(sm, name, rotated_to(again), f"rotation to {again}", retrying_server)
    assert rotation_error(sm, name) is None, "a successful rotation clears the last failure"
    assert stages(d)[created["VersionId"]] == ["AWSPREVIOUS"]
    assert target.accepts("app", json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["password"])


def test_rotate_secret_refused_while_awspending_is_on_another_version(sm, endpoint, uid, prefix):
    # RotateSecret's reference: "If the AWSPENDING staging label is present but not
    # attached to the same version as AWSCURRENT then any later invocation of
    # RotateSecret assumes that a previous rotation request is still in progress and
    # returns an error." A failed rotation leaves exactly this; so does a put by hand.
    arn = create_rotator(endpoint, f"random-{uid}", "random", {})
    name = f"{prefix}/pending-elsewhere"
    created = sm.create_secret(Name=name, SecretString="current")
    pending = sm.put_secret_value(SecretId=name, SecretString="half-made", VersionStages=["AWSPENDING"])
    try:
        r = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 30})
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidRequestException", e.response
    else:
        pytest.fail("SERVER BUG: RotateSecret was accepted (started rotation "
                    f"{r.get('VersionId')}) while AWSPENDING is on version {pending['VersionId']}, "
                    "not on AWSCURRENT's; AWS refuses with InvalidRequestException")
    assert stages(sm.describe_secret(SecretId=name)) == {
        created["VersionId"]: ["AWSCURRENT"], pending["VersionId"]: ["AWSPENDING"]}


def test_rotation_credentials_reach_only_their_secret(sm, server, endpoint, uid, prefix, target):
    probing = lambda_rotator(endpoint, f"probing-{uid}", "probing_rotation")
    other = f"{prefix}/other"
    sm.create_secret(Name=other, SecretString="not-for-the-rotation-function")
    name = f"{prefix}/probed"
    sm.create_secret(Name=name, SecretString=app_secret(target, other_secret=other))
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=probing,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    wait_rotated(sm, name, token, server)

    probe = target.read()["probe"]
    arn = sm.describe_secret(SecretId=name)["ARN"]
    assert probe["event"] == {"Step": "createSecret", "SecretId": arn, "ClientRequestToken": token,
                              "RotationToken": probe["event"]["RotationToken"]}, probe["event"]
    assert probe["env"] == {"SECRETS_MANAGER_ENDPOINT": endpoint, "AWS_REGION": REGION}
    assert 0 < probe["remaining_ms"] <= 30_000
    assert probe["own_describe"] == "allowed"
    for action in ("other_get", "other_describe", "other_put", "create"):
        assert probe[action] == "AccessDeniedException", (action, probe[action])
    assert probe["listed"] == [name]
    assert sm.get_secret_value(SecretId=other)["SecretString"] == "not-for-the-rotation-function"
    expect_error(sm.describe_secret, "ResourceNotFoundException", SecretId=f"{other}-made-by-rotation")

    creds = probe["credentials"]
    assert creds["aws_access_key_id"] != ACCESS_KEY_ID and creds["aws_session_token"]
    # Short-lived: they stopped working when the step ended.
    leaked = boto3.session.Session(**creds).client(
        "secretsmanager", region_name=REGION, endpoint_url=endpoint, config=client_config())
    with pytest.raises(ClientError) as ei:
        leaked.describe_secret(SecretId=name)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 401, 403), ei.value.response


# --------------------------------------------------------------------------- built-in rotators


def test_random_rotator_rotates_a_json_field(sm, server, endpoint, uid, prefix):
    arn = create_rotator(endpoint, f"random-{uid}", "random", {"length": 24, "field": "api_key"})
    name, old = f"{prefix}/api-key", json.dumps({"client_id": "svc-7", "api_key": "old-key"})
    created = sm.create_secret(Name=name, SecretString=old)
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 90})["VersionId"]
    d = wait_rotated(sm, name, token, server)
    assert stages(d) == {created["VersionId"]: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    new = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert new["client_id"] == "svc-7" and set(new) == {"client_id", "api_key"}
    assert len(new["api_key"]) == 24 and new["api_key"] != "old-key"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == old
    assert utc(d["NextRotationDate"]).date() == utc(d["LastRotatedDate"]).date() + 90 * DAY

    # Without configuration, RotateSecret rotates again with the stored rotator and rules.
    again = sm.rotate_secret(SecretId=name)["VersionId"]
    assert again not in (token, created["VersionId"])
    d = wait_rotated(sm, name, again, server, since=d["LastRotatedDate"])
    assert stages(d) == {token: ["AWSPREVIOUS"], again: ["AWSCURRENT"]}
    assert d["RotationLambdaARN"] == arn and d["RotationRules"] == {"AutomaticallyAfterDays": 90}
    newer = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    assert newer["client_id"] == "svc-7" and newer["api_key"] not in ("old-key", new["api_key"])


def test_put_secret_value_by_hand_counts_as_a_rotation(sm, server, endpoint, uid, prefix):
    arn = create_rotator(endpoint, f"random-{uid}", "random", {})
    # Without rotation, a put is no rotation.
    plain = f"{prefix}/plain"
    sm.create_secret(Name=plain, SecretString="v1")
    sm.put_secret_value(SecretId=plain, SecretString="v2")
    assert "LastRotatedDate" not in sm.describe_secret(SecretId=plain)

    name = f"{prefix}/by-hand"
    sm.create_secret(Name=name, SecretString="v1")
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                             RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
    first = wait_rotated(sm, name, token, server)["LastRotatedDate"]
    put = sm.put_secret_value(SecretId=name, SecretString="set-by-hand")
    d = sm.describe_secret(SecretId=name)
    assert d["LastRotatedDate"] > first, (first, d["LastRotatedDate"])
    assert utc(d["NextRotationDate"]).date() == utc(d["LastRotatedDate"]).date() + 30 * DAY
    assert stages(d) == {token: ["AWSPREVIOUS"], put["VersionId"]: ["AWSCURRENT"]}


# --------------------------------------------------------------------------- aws cli


def cli_time(t) -> dt.datetime:
    """A timestamp as the aws cli prints it: epoch seconds or ISO 8601."""
    return dt.datetime.fromtimestamp(t, dt.timezone.utc) if isinstance(t, (int, float)) \
        else dt.datetime.fromisoformat(t)


def test_cli_rotate_secret(aws, sm, server, endpoint, uid, prefix, target):
    arn = lambda_rotator(endpoint, f"cli-app-key-{uid}", "rotate_app_key")
    name = f"{prefix}/cli-rotated"
    _, created, _ = aws("create-secret", "--name", name, "--secret-string", app_secret(target), check=True)
    _, r, _ = aws("rotate-secret", "--secret-id", name, "--rotation-lambda-arn", arn,
                  "--rotation-rules", "AutomaticallyAfterDays=7", check=True)
    assert (r["ARN"], r["Name"]) == (created["ARN"], name)
    token = r["VersionId"]

    wait_rotated(sm, name, token, server)  # boto3 polls faster than the cli starts
    _, d, _ = aws("describe-secret", "--secret-id", name, check=True)
    assert d["VersionIdsToStages"] == {created["VersionId"]: ["AWSPREVIOUS"], token: ["AWSCURRENT"]}
    assert d["RotationEnabled"] is True and d["RotationLambdaARN"] == arn
    assert d["RotationRules"]["AutomaticallyAfterDays"] == 7
    last, nxt = cli_time(d["LastRotatedDate"]), cli_time(d["NextRotationDate"])
    assert utc(nxt).date() == utc(last).date() + 7 * DAY, (last, nxt)
    _, g, _ = aws("get-secret-value", "--secret-id", name, check=True)
    assert g["VersionId"] == token
    assert target.accepts("app", json.loads(g["SecretString"])["password"])

    _, c, _ = aws("cancel-rotate-secret", "--secret-id", name, check=True)
    assert c["Name"] == name and "VersionId" not in c
    _, d, _ = aws("describe-secret", "--secret-id", name, check=True)
    assert d["RotationEnabled"] is False and "NextRotationDate" not in d


def test_back_to_back_rotations_are_over_when_awscurrent_moves(sm, endpoint, uid, prefix):
    """AWS clients (its templates, many scripts) wait for AWSCURRENT to move, then describe
    the secret or rotate it again at once: the answers follow the labels, not the moment
    Rotor's own record of the rotation closes."""
    arn = create_rotator(endpoint, f"b2b-{uid}", "random", {"length": 20})
    name = f"{prefix}/back-to-back"
    sm.create_secret(Name=name, SecretString="first")
    previous_rotated = None
    for i in range(20):
        asked = utc(dt.datetime.now(dt.timezone.utc)) - dt.timedelta(seconds=1)
        if i == 0:
            token = sm.rotate_secret(SecretId=name, RotationLambdaARN=arn,
                                     RotationRules={"AutomaticallyAfterDays": 30})["VersionId"]
        else:
            token = sm.rotate_secret(SecretId=name)["VersionId"]  # refused if the last one lagged
        deadline = time.monotonic() + ROTATION_TIMEOUT
        while True:
            d = sm.describe_secret(SecretId=name)
            if "AWSCURRENT" in d["VersionIdsToStages"].get(token, []):
                break
            assert time.monotonic() < deadline, f"rotation {i} did not finish: {d}"
        # Described at once, the rotation is over in every field.
        rotated = utc(d["LastRotatedDate"])
        assert rotated >= asked.replace(microsecond=0), (i, d)
        assert previous_rotated is None or rotated >= previous_rotated, (i, d)
        assert utc(d["NextRotationDate"]) > rotated, (i, d)
        assert d["VersionIdsToStages"][token] == ["AWSCURRENT"], (i, d)
        previous_rotated = rotated
