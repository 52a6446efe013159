#!/bin/sh
# Entry point of ChatStreamFunction: the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this
# script, waits for the port, and proxies Function URL requests to uvicorn with response streaming.
# The layer's packages are not on PYTHONPATH when the runtime's bootstrap is bypassed, so add them.
export PYTHONPATH="/var/task:/opt/python${PYTHONPATH:+:$PYTHONPATH}"
exec python -m uvicorn --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log app:app
