"""otelkv's configuration: one dataclass tree (:mod:`.schema` and a module per section), defaults in
one place, one ``validate`` per section, loading from file, environment and flags (:mod:`.load`),
the Collector's notation (:mod:`.notation`) and credentials (:mod:`.secrets`).

Nothing here imports a higher layer of otelkv: only :mod:`otelkv.errors` and :mod:`otelkv.textfile`.
"""

from otelkv.config.convert import build
from otelkv.config.delivery import REQUEST_COST, DeliveryConfig, RetryConfig
from otelkv.config.enrich import EnrichConfig
from otelkv.config.forward import COLLECTOR_ATTEMPT_SECONDS, AuthConfig, ForwardConfig, TLSConfig, header_value_problem
from otelkv.config.load import CONFIG_FILE_ENV, ENVIRONMENT, load, to_dict
from otelkv.config.receive import (
    ReceiveAuthConfig,
    ReceiveConfig,
    ReceiveGRPCConfig,
    ReceiveHTTPConfig,
    ReceiveTLSConfig,
)
from otelkv.config.schema import Config
from otelkv.config.values import MiB, split_host_port
from otelkv.errors import ConfigError

__all__ = [
    "COLLECTOR_ATTEMPT_SECONDS",
    "CONFIG_FILE_ENV",
    "ENVIRONMENT",
    "REQUEST_COST",
    "AuthConfig",
    "Config",
    "ConfigError",
    "DeliveryConfig",
    "EnrichConfig",
    "ForwardConfig",
    "MiB",
    "ReceiveAuthConfig",
    "ReceiveConfig",
    "ReceiveGRPCConfig",
    "ReceiveHTTPConfig",
    "ReceiveTLSConfig",
    "RetryConfig",
    "TLSConfig",
    "build",
    "header_value_problem",
    "load",
    "split_host_port",
    "to_dict",
]
