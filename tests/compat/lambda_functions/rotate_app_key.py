"""Rotates an application's password, written for AWS Lambda as AWS's rotation
templates are written; the compatibility suite runs it, unmodified, through Rotor's
`lambda` rotator.

The secret is a JSON object: {"username": ..., "password": ..., "target": PATH}.
The "target system" is the JSON file at PATH, {"username": ..., "passwords": [...]}:
the passwords it accepts for that user.

Rotation steps:
- createSecret: makes a new password and stores it as the AWSPENDING version.
- setSecret: adds the pending password to the passwords the target accepts.
- testSecret: checks that the target accepts the pending password.
- finishSecret: moves AWSCURRENT to the pending version.
"""

import json
import logging
import os

import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def lambda_handler(event, context):
    """Secrets Manager rotation entry point.

    Args:
        event (dict): Step, SecretId (the secret's ARN) and ClientRequestToken (the
            new version's id).
        context (LambdaContext): The Lambda runtime's context.

    Raises:
        ValueError: The secret is not enabled for rotation, or the version is not
            staged for it, or the step is unknown.
    """
    arn = event['SecretId']
    token = event['ClientRequestToken']
    step = event['Step']

    service_client = boto3.client('secretsmanager', endpoint_url=os.environ['SECRETS_MANAGER_ENDPOINT'])

    # Only rotate a secret that is enabled for rotation, and only a version staged for it.
    metadata = service_client.describe_secret(SecretId=arn)
    if not metadata['RotationEnabled']:
        logger.error("Secret %s is not enabled for rotation" % arn)
        raise ValueError("Secret %s is not enabled for rotation" % arn)
    versions = metadata['VersionIdsToStages']
    if token not in versions:
        logger.error("Secret version %s has no stage for rotation of secret %s." % (token, arn))
        raise ValueError("Secret version %s has no stage for rotation of secret %s." % (token, arn))
    if "AWSCURRENT" in versions[token]:
        logger.info("Secret version %s already set as AWSCURRENT for secret %s." % (token, arn))
        return
    elif "AWSPENDING" not in versions[token]:
        logger.error("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))
        raise ValueError("Secret version %s not set as AWSPENDING for rotation of secret %s." % (token, arn))

    if step == "createSecret":
        create_secret(service_client, arn, token)
    elif step == "setSecret":
        set_secret(service_client, arn, token)
    elif step == "testSecret":
        test_secret(service_client, arn, token)
    elif step == "finishSecret":
        finish_secret(service_client, arn, token)
    else:
        raise ValueError("Invalid step parameter")


def create_secret(service_client, arn, token):
    """Stores a new password as the AWSPENDING version, unless that version exists."""
    current = json.loads(service_client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")['SecretString'])
    try:
        service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        logger.info("createSecret: Successfully retrieved secret for %s." % arn)
    except service_client.exceptions.ResourceNotFoundException:
        exclude_characters = os.environ.get('EXCLUDE_CHARACTERS', '/@"\'\\')
        passwd = service_client.get_random_password(ExcludeCharacters=exclude_characters)
        current['password'] = passwd['RandomPassword']
        service_client.put_secret_value(SecretId=arn, ClientRequestToken=token,
                                        SecretString=json.dumps(current), VersionStages=['AWSPENDING'])
        logger.info("createSecret: Successfully put secret for ARN %s and version %s." % (arn, token))


def set_secret(service_client, arn, token):
    """Makes the target accept the pending password (the current one keeps working)."""
    pending = get_secret_dict(service_client, arn, "AWSPENDING", token)
    target = read_target(pending['target'])
    if target['username'] != pending['username']:
        raise ValueError("setSecret: the target holds user %s, not %s" % (target['username'], pending['username']))
    if pending['password'] not in target['passwords']:
        target['passwords'].append(pending['password'])
        write_target(pending['target'], target)
    logger.info("setSecret: Successfully set password for user %s in the target for secret %s." % (pending['username'], arn))


def test_secret(service_client, arn, token):
    """Checks that the target accepts the pending password."""
    pending = get_secret_dict(service_client, arn, "AWSPENDING", token)
    target = read_target(pending['target'])
    if target['username'] != pending['username'] or pending['password'] not in target['passwords']:
        raise ValueError("testSecret: the target refused the pending password of secret %s" % arn)
    logger.info("testSecret: Successfully signed in with the pending password of secret %s." % arn)


def finish_secret(service_client, arn, token):
    """Moves AWSCURRENT to the pending version."""
    metadata = service_client.describe_secret(SecretId=arn)
    current_version = None
    for version in metadata["VersionIdsToStages"]:
        if "AWSCURRENT" in metadata["VersionIdsToStages"][version]:
            if version == token:
                # The correct version is already marked as current, return
                logger.info("finishSecret: Version %s already marked as AWSCURRENT for %s" % (version, arn))
                return
            current_version = version
            break

    service_client.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT",
                                               MoveToVersionId=token, RemoveFromVersionId=current_version)
    logger.info("finishSecret: Successfully set AWSCURRENT stage to version %s for secret %s." % (token, arn))


def get_secret_dict(service_client, arn, stage, token=None):
    """The secret's value at `stage` (and version `token`), as a dict.

    Raises:
        KeyError: A required field is missing.
    """
    required_fields = ['username', 'password', 'target']
    if token:
        secret = service_client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=stage)
    else:
        secret = service_client.get_secret_value(SecretId=arn, VersionStage=stage)
    secret_dict = json.loads(secret['SecretString'])
    for field in required_fields:
        if field not in secret_dict:
            raise KeyError("%s key is missing from secret JSON" % field)
    return secret_dict


def read_target(path):
    with open(path) as f:
        return json.load(f)


def write_target(path, target):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(target, f)
    os.replace(tmp, path)
