# Rotor's runner for rotation functions written for AWS Lambda.
#
# Rotor runs it as `python3 -c <this file>` with the handler in ROTOR_LAMBDA_HANDLER
# ("module.function"), the module's directory on PYTHONPATH, the Lambda event as
# JSON on stdin, and an AWS endpoint plus short-lived credentials in the environment.
# It calls the handler as Lambda would: handler(event, context).
# On an exception it prints only the exception's type (its message could hold a
# secret) and exits with status 1.
import importlib
import json
import os
import sys
import time
import uuid


class Context:
    """The parts of Lambda's context object that rotation functions use."""

    def __init__(self, name, account, deadline):
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:%s:%s:function:%s" % (
            os.environ.get("AWS_REGION", "us-east-1"),
            account,
            name,
        )
        self.memory_limit_in_mb = 128
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = "/rotor/lambda/" + name
        self.log_stream_name = self.aws_request_id
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def main():
    handler_name = os.environ["ROTOR_LAMBDA_HANDLER"]
    module_name, _, function_name = handler_name.rpartition(".")
    event = json.load(sys.stdin)
    timeout = float(os.environ.get("ROTOR_LAMBDA_TIMEOUT_SECONDS", "30"))
    try:
        module = importlib.import_module(module_name)
        handler = getattr(module, function_name)
        # The account is the one in the secret's ARN.
        account = event.get("SecretId", "").split(":")[4:5] or ["123456789012"]
        function = os.environ.get("ROTOR_LAMBDA_FUNCTION", module_name)
        handler(event, Context(function, account[0], time.time() + timeout))
    except BaseException as e:  # noqa: BLE001 - every failure is reported the same way
        print("ROTOR-LAMBDA-ERROR " + type(e).__name__, flush=True)
        sys.exit(1)


main()
