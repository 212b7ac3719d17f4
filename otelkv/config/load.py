"""Loading otelkv's configuration. Sources, later ones winning: the defaults
(:mod:`otelkv.config.schema`), the YAML file (``--config``), the environment (:data:`ENVIRONMENT`,
the one list of every variable otelkv reads) and command-line flags.

Every error names the YAML key it is about (``forward.endpoint: …``), or the environment variable
or flag that set the value (``OTELKV_FORWARD_ENDPOINT (forward.endpoint): …``). The file takes the
Collector's notation: durations (``5s``), sizes (``16MiB``), ``${env:NAME}``
(:mod:`otelkv.config.notation`); its text may be in any encoding users hand over, and its YAML
errors are one line with the file and line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from otelkv.config import notation
from otelkv.config.convert import build
from otelkv.config.schema import Config
from otelkv.errors import ConfigError
from otelkv.textfile import TextError, read_text

__all__ = ["CONFIG_FILE_ENV", "ENVIRONMENT", "expand", "load", "read_file", "to_dict"]

#: The largest configuration file read (a configuration is a few KiB).
CONFIG_MAX_BYTES: Final = 1024 * 1024
#: Marks a node of the YAML being expanded (an alias that reaches it again is a loop).
_EXPANDING: Final = object()

#: Every environment variable otelkv reads, and the key it sets.
ENVIRONMENT: Final[Mapping[str, str]] = {
    "OTELKV_GRPC_LISTEN": "grpc_listen",
    "OTELKV_HTTP_LISTEN": "http_listen",
    "OTELKV_FORWARD_ENDPOINT": "forward.endpoint",
    "OTELKV_FORWARD_TENANT": "forward.tenant",
    "OTELKV_FORWARD_TIMEOUT": "forward.timeout",
    "OTELKV_MAX_MESSAGE_BYTES": "max_message_bytes",
    "OTELKV_LOG_LEVEL": "log_level",
    "OTELKV_LOG_FORMAT": "log_format",
    "OTELKV_METRICS_OTLP_ENDPOINT": "metrics_otlp_endpoint",
    "OTELKV_ADMIN_LISTEN": "admin_listen",
    "OTELKV_ADMIN_GRPC_LISTEN": "admin_grpc_listen",
}
#: Also read: ``OTELKV_CONFIG`` (the YAML file when ``--config`` is not given), ``OTELKV_NO_EXTENSIONS``
#: (``otelkv.otlp.native.NO_EXTENSIONS_ENV``, which core runs) and the variables named by
#: ``forward.auth.bearer_token_env`` / ``password_env``.
CONFIG_FILE_ENV: Final = "OTELKV_CONFIG"


def load(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    flags: Mapping[str, str] | None = None,
    offline: bool = False,
) -> Config:
    """Build and validate the configuration from a file, the environment and flag overrides.

    ``overrides`` maps dotted keys (``forward.endpoint``) to values; None values are ignored.
    ``flags`` names the flag of an override key (``--forward``), for error messages.
    ``offline``: skip the checks that need this machine (``check-config --offline``).
    """
    environ = os.environ if environ is None else environ
    from_environment = not path and bool(environ.get(CONFIG_FILE_ENV))
    path = path or environ.get(CONFIG_FILE_ENV) or None
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = read_file(Path(path), environ, offline=offline)
        except ConfigError as error:
            if from_environment:  # say where the file's name came from
                raise ConfigError(f"{CONFIG_FILE_ENV}={path}: {str(error).removeprefix(f'{path}: ')}") from None
            raise
    sources: dict[str, str] = {}
    for name, key in ENVIRONMENT.items():
        if environ.get(name):
            _set_dotted(data, key, environ[name])
            sources[key] = name
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
            sources[key] = (flags or {}).get(key, key)
    try:
        config: Config = build(Config, data, "")
        config.validate(offline=offline)
    except ConfigError as error:
        key, sep, rest = str(error).partition(": ")
        if sep and sources.get(key, key) != key:
            raise ConfigError(f"{sources[key]} ({key}): {rest}") from None
        raise
    return config


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for depth, parent in enumerate(parents):
        data = data.setdefault(parent, {})
        if not isinstance(data, dict):
            raise ConfigError(f"{'.'.join(parents[: depth + 1])}: must be a mapping, got {type(data).__name__}")
    data[last] = value


def read_file(path: Path, environ: Mapping[str, str], *, offline: bool) -> dict[str, Any]:
    """The mapping in ``path``, expanded; ConfigError naming the file (and line) when it is not one."""
    import yaml  # noqa: PLC0415 - only a configuration with a file needs it

    from otelkv.config.yaml_file import load_yaml  # noqa: PLC0415

    try:
        loaded = load_yaml(read_text(path, limit=CONFIG_MAX_BYTES))
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from error
    except ValueError as error:  # an integer of more digits than Python converts (4,300)
        if isinstance(error, TextError):
            raise ConfigError(str(error)) from None
        raise ConfigError(f"{path}: not valid YAML: {str(error).split(':')[0].lower()}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: must be a mapping of keys, got {type(loaded).__name__}")
    expanded: dict[str, Any] = expand(loaded or {}, environ, "", offline=offline)
    return expanded


def expand(
    data: Any, environ: Mapping[str, str], key: str, *, offline: bool, seen: dict[int, Any] | None = None
) -> Any:
    """``data`` with ``${env:NAME}`` replaced in every string, errors naming the key; keys must be strings.

    A node YAML shares through an alias (``*name``) is expanded once (``seen``): nested aliases
    would otherwise make billions of copies of a few lines.
    """
    seen = {} if seen is None else seen
    if isinstance(data, dict | list) and id(data) in seen:
        if seen[id(data)] is _EXPANDING:  # an alias inside the node it names: YAML allows it, no config is one
            raise ConfigError(f"{key.rstrip('.') or 'config'}: a YAML alias refers to a node that holds it (a loop)")
        return seen[id(data)]
    if isinstance(data, dict | list):
        seen[id(data)] = _EXPANDING
    result: Any = data
    if isinstance(data, dict):
        for name in data:
            if not isinstance(name, str):
                raise ConfigError(f"{key}{name!r}: keys must be strings (quote it)")
        result = {k: expand(v, environ, f"{key}{k}.", offline=offline, seen=seen) for k, v in data.items()}
    elif isinstance(data, list):
        result = [
            expand(v, environ, f"{key.rstrip('.')}[{i}].", offline=offline, seen=seen) for i, v in enumerate(data)
        ]
    elif isinstance(data, str):
        try:
            return notation.expand(data, environ)
        except notation.MissingVariable as missing:
            if offline:
                return data
            raise ConfigError(f"{key.rstrip('.')}: environment variable {missing.name!r} is not set") from None
    if isinstance(data, dict | list):
        seen[id(data)] = result
    return result


def to_dict(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data (credentials are only env names and paths)."""
    return dataclasses.asdict(config)
