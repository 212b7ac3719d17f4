"""Thin OTLP receivers: decode, call the pipeline, encode the answer (gRPC and HTTP)."""

from typing import Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from otelkv.forward import Delivery

#: What decoding, enriching and re-encoding a request costs in memory, in multiples of its
#: protobuf size (measured: decode 1x, enrich 4x, encode and gzip 2x; docs/reliability.md). A
#: request is charged this before it is decoded, so the in-flight cap bounds memory, not bytes.
DECODE_COST: Final = 8


def response_for(delivery: Delivery) -> ExportLogsServiceResponse:
    """The OTLP answer to an Export the target took: a partial success when it refused some."""
    answer = ExportLogsServiceResponse()
    if delivery.rejected or delivery.message:
        answer.partial_success.rejected_log_records = delivery.rejected
        answer.partial_success.error_message = delivery.message
    return answer
