"""rotate_app_key, held up in createSecret so that a test can look at a rotation in
progress.

The secret's value names a marker file ("sleeping_marker") and how long to sleep
("sleep_seconds"). In createSecret this function creates the marker, sleeps, runs
rotate_app_key's step, and then writes MARKER.done holding "ok" or the type of the
exception the step raised.
"""

import json
import os
import time

import boto3

import rotate_app_key


def lambda_handler(event, context):
    if event['Step'] != 'createSecret':
        return rotate_app_key.lambda_handler(event, context)
    service_client = boto3.client('secretsmanager', endpoint_url=os.environ['SECRETS_MANAGER_ENDPOINT'])
    current = json.loads(service_client.get_secret_value(SecretId=event['SecretId'])['SecretString'])
    marker = current['sleeping_marker']
    open(marker, 'w').close()
    outcome = 'ok'
    try:
        time.sleep(float(current['sleep_seconds']))
        rotate_app_key.lambda_handler(event, context)
    except Exception as e:
        outcome = type(e).__name__
        raise
    finally:
        with open(marker + '.done', 'w') as f:
            f.write(outcome)
