"""rotate_app_key that first, in createSecret, tries what its credentials allow and
records the outcome in the target file under "probe".

The secret's value names another secret ("other_secret"); the credentials Rotor
gives a rotation function must not reach it. The credentials themselves are
recorded too, so that the test can check they stop working once the step is over.
"""

import json
import os

import boto3
from botocore.exceptions import ClientError

import rotate_app_key


def lambda_handler(event, context):
    if event['Step'] == 'createSecret':
        probe(event, context)
    return rotate_app_key.lambda_handler(event, context)


def outcome(call):
    try:
        call()
        return 'allowed'
    except ClientError as e:
        return e.response['Error']['Code']


def probe(event, context):
    client = boto3.client('secretsmanager', endpoint_url=os.environ['SECRETS_MANAGER_ENDPOINT'])
    arn = event['SecretId']
    current = json.loads(client.get_secret_value(SecretId=arn)['SecretString'])
    other = current['other_secret']
    listed = [s['Name'] for s in client.list_secrets()['SecretList']]
    report = {
        'own_describe': outcome(lambda: client.describe_secret(SecretId=arn)),
        'other_get': outcome(lambda: client.get_secret_value(SecretId=other)),
        'other_describe': outcome(lambda: client.describe_secret(SecretId=other)),
        'other_put': outcome(lambda: client.put_secret_value(SecretId=other, SecretString='stolen')),
        'create': outcome(lambda: client.create_secret(Name=other + '-made-by-rotation', SecretString='x')),
        'listed': listed,
        'event': event,
        'function_name': context.function_name,
        'remaining_ms': context.get_remaining_time_in_millis(),
        'env': {k: os.environ.get(k) for k in ('SECRETS_MANAGER_ENDPOINT', 'AWS_REGION')},
        'credentials': {
            'aws_access_key_id': os.environ['AWS_ACCESS_KEY_ID'],
            'aws_secret_access_key': os.environ['AWS_SECRET_ACCESS_KEY'],
            'aws_session_token': os.environ['AWS_SESSION_TOKEN'],
        },
    }
    target = rotate_app_key.read_target(current['target'])
    target['probe'] = report
    rotate_app_key.write_target(current['target'], target)
