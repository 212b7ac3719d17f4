"""Read a credential from an environment variable or a mounted file, checked, never echoed;
and keep credentials out of what a target answers (:func:`scrub`).

A Secret mounted as a file usually ends in a newline (``echo token > file``): one trailing line
break is dropped. A line break or another control character inside would make an invalid header
(``Invalid header value b'Bearer …'``, logged with the token in it) and fail every forward, so it
is refused when read, naming the variable or file — never the content.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Mapping
from typing import Any, Final

from otelkv.errors import ConfigError
from otelkv.textfile import TextError, read_small

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

#: Headers whose values are not secrets: the tenant (Loki's org id, not a credential) and those
#: otelkv sets itself, whose values appear in targets' errors. ``check-config`` prints these as they are.
HARMLESS_HEADERS: Final = frozenset({"x-scope-orgid", "user-agent", "content-type", "content-encoding"})


def redacted(effective: dict[str, Any]) -> dict[str, Any]:
    """``effective`` (:func:`otelkv.config.to_dict`) with ``forward.headers`` values hidden but harmless ones."""
    forward = dict(effective.get("forward", {}))
    headers = forward.get("headers") or {}
    forward["headers"] = {k: v if k.lower() in HARMLESS_HEADERS else "<redacted>" for k, v in headers.items()}
    return {**effective, "forward": forward}


def read_secret(
    key: str, *, env: str | None = None, file: str | None = None, environ: Mapping[str, str] | None = None
) -> str | None:
    """The credential named by ``env`` or ``file``, or None; errors name ``{key}_env`` / ``{key}_file``."""
    if env:
        environ = os.environ if environ is None else environ
        if env not in environ:
            raise ConfigError(f"{key}_env: environment variable {env!r} is not set")
        return _checked(environ[env], f"{key}_env: environment variable {env!r}")
    if file:
        try:
            data = read_small(file)
        except OSError as error:
            raise ConfigError(f"{key}_file: cannot read {file!r}: {error.strerror}") from None
        except TextError as error:
            raise ConfigError(f"{key}_file: {error}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{key}_file: {file!r} is not UTF-8 text") from None
        return _checked(text, f"{key}_file: {file!r}")
    return None


def _checked(value: str, where: str) -> str:
    value = value.removesuffix("\n").removesuffix("\r")
    if not value.strip():
        raise ConfigError(f"{where} is empty")
    if _CONTROL.search(value):
        raise ConfigError(
            f"{where} holds a line break or another control character inside the value; "
            "a header cannot carry it (one trailing newline is fine)"
        )
    return value


def secret_values(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The strings of ``headers`` that must never come out: every value but the tenant's, and the
    parts of an ``Authorization`` value (the token; the base64 and the password of basic auth)."""
    found: set[str] = set()
    for name, value in headers.items():
        if name.lower() in HARMLESS_HEADERS:
            continue
        found.add(value)
        scheme, _, credential = value.partition(" ")
        if name.lower() == "authorization" and credential:
            found.add(credential)
            if scheme.lower() == "basic":
                with contextlib.suppress(ValueError):
                    found.add(base64.b64decode(credential).decode().partition(":")[2])
    return tuple(sorted((v for v in found if len(v) >= 3), key=len, reverse=True))  # longest first


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every one of ``secrets`` replaced by ``<redacted>``."""
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


def read_token(*, env: str | None, file: str | None) -> str | None:
    """The receivers' bearer token (``receive.auth``) from its file or variable, checked as every
    credential is (:func:`read_secret`: one trailing line break dropped, none inside, errors name
    the key and file, never the content); spaces around it are refused too."""
    token = read_secret("receive.auth.bearer_token", env=env, file=file)
    if token is not None and token != token.strip():
        key = "receive.auth.bearer_token_file" if file else "receive.auth.bearer_token_env"
        raise ConfigError(f"{key}: the token in {file or env!r} starts or ends with spaces")
    return token
