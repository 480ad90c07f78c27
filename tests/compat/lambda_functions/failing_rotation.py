"""rotate_app_key against a target system that is down: setSecret raises
ConnectionRefusedError (its message must never reach Rotor's API)."""

import rotate_app_key


def lambda_handler(event, context):
    if event['Step'] == 'setSecret':
        raise ConnectionRefusedError("the target system at 10.0.0.1:5432 refused the connection")
    return rotate_app_key.lambda_handler(event, context)
