"""Build the dataclass tree from plain data: unknown keys and wrong types are errors naming the key.

Small and typed on purpose (dataclasses' own type hints drive it): a library such as ``cattrs`` or
``pydantic`` would replace ~70 lines with a dependency of its own and error messages we would
have to translate back into YAML keys.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from typing import Annotated, Any, Final, Union, get_args, get_origin, get_type_hints

from otelkv.config import notation
from otelkv.errors import ConfigError

__all__ = ["build"]


def build(cls: type[Any], data: Mapping[str, Any], prefix: str) -> Any:
    """An instance of dataclass ``cls`` from ``data``; unknown keys and wrong types are errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls, include_extras=True)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    values = {name: _convert(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value if value is not None else {}, f"{key}.")
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return _notation(args[0], args[1], value, key)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        return _convert(next(a for a in args if a is not type(None)), value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a mapping, got {type(value).__name__}")
        return {str(k): _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    return _scalar(hint, value, key)


def _notation(hint: type[Any], kind: str, value: Any, key: str) -> Any:
    """A duration (seconds) or a size (bytes): a number, or text in the Collector's notation."""
    if isinstance(value, str):
        try:
            return notation.parse_duration(value) if kind == "duration" else notation.parse_size(value)
        except (ValueError, OverflowError) as error:
            raise ConfigError(f"{key}: {error}") from None
    return _scalar(hint, value, key)


def _scalar(hint: type[Any], value: Any, key: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            try:
                return int(value)
            except ValueError:  # more digits than Python converts (4,300)
                raise ConfigError(f"{key}: too large a number, got {len(value.strip())} digits") from None
    elif hint is float:
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return notation.finite(float(value))
            if isinstance(value, str):
                return notation.finite(float(value))
        except ValueError as error:
            if "finite" in str(error):
                raise ConfigError(f"{key}: {error}") from None
        except OverflowError:
            raise ConfigError(f"{key}: must be a finite number, got {value!r}") from None
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            # YAML 1.1 reads 0123 as 83 and 1e3 as 1000.0: taking the number's text would route data
            # to a tenant or address nobody wrote. Refused, with the way to keep it as written.
            raise ConfigError(
                f"{key}: must be text, got the number {value!r} (YAML read it as a number: quote the "
                "value to keep it as written, e.g. '0123')"
            )
    raise ConfigError(f"{key}: must be {_KIND.get(hint, hint.__name__)}, got {value!r}")


_KIND: Final = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}
