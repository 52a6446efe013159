"""Worker Lambda: runs jobs from the jobs queue (SQS event source, batch size 10, ReportBatchItemFailures).

Thin: Powertools' BatchProcessor calls `JobRunner.process` for each record and reports the records that
raised as `batchItemFailures`, so SQS keeps exactly those messages (see chatbot.services.job_runner).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from chatbot.observability import get_logger
from chatbot.services.job_runner import get_job_runner
from chatbot.services.job_types import SimulatedCrash

logger = get_logger("worker")


class WorkerCrashed(RuntimeError):
    """The invocation failed as a whole (what the Lambda service reports for a crashed runtime)."""


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not event.get("Records"):
        return {"batchItemFailures": []}
    runner = get_job_runner()
    # Every claim of this batch holds until the invocation's budget ends (its deadline, capped by the
    # queue's visibility timeout); records not reached by then are left for redelivery.
    lease_until = runner.batch_lease_until(_remaining_seconds(context))

    def record_handler(record: SQSRecord) -> dict[str, Any]:
        return runner.process(record.raw_event, lease_until=lease_until)

    # Every record failing is a normal outcome here (e.g. a batch of retries), not an invocation error.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    try:
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    except SimulatedCrash as crash:
        # A diagnostic crash stops the batch where it happened (the batch processor does not catch it);
        # the invocation then fails like a killed Lambda, so no message of the batch is acknowledged.
        raise WorkerCrashed(str(crash)) from crash
    runner.touch_heartbeat(success=bool(processor.success_messages))
    return response


def _remaining_seconds(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    try:
        return float(remaining()) / 1000
    except (TypeError, ValueError):
        return None
