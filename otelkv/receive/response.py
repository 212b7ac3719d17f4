"""The OTLP answer to an Export the target took."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from otelkv.forward import Delivery

__all__ = ["response_for"]


def response_for(delivery: Delivery) -> ExportLogsServiceResponse:
    """The OTLP answer to an Export the target took: a partial success when it refused some."""
    answer = ExportLogsServiceResponse()
    if delivery.rejected or delivery.message:
        answer.partial_success.rejected_log_records = delivery.rejected
        answer.partial_success.error_message = delivery.message
    return answer
