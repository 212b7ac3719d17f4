"""Thin OTLP receivers: listen, limit, authenticate, decode, call the pipeline, encode the answer.

The path of one request, module by module::

    receive/grpc_server.py or receive/http_server.py   listen (receive/listen.py checks the address),
        receive/connections.py                          count connections, refuse beyond the limit,
        receive/security.py                             TLS and the bearer token,
        receive/charge.py + pipeline/inflight.py        charge its memory before it is read,
        receive/body.py                                 inflate and decode (OTLP protobuf or JSON),
    pipeline/export.py                                  enrich → send (or enqueue) → settle, counted:
        otlp/enrich.py (+ otlp/wire.py, the C core)         read k8s_events records, enrich them with
            kubevirt/                                       the parser and the migration tracker,
        forward/http.py | forward/grpc.py | forward/stdout.py   send once, classify the outcome,
        delivery/store.py, delivery/sender.py           or enqueue to disk and drain with retry,
    receive/response.py                                 the OTLP answer (partial success) or
    errors.py                                           the one map from an error to its status.

The face imports nothing, so that checking a listen address does not load the servers.
"""

__all__: list[str] = []
