"""The trial bind that names a listen address serve cannot use, with real sockets."""

from __future__ import annotations

import socket

import pytest

from otelkv.config import Config
from otelkv.receive.listen import ListenError, check_listen, listen_keys


def test_every_listen_key_of_the_configuration_is_checked() -> None:
    assert {"grpc_listen", "http_listen"} <= set(listen_keys(Config()))
    every = Config(admin_listen="127.0.0.1:0", admin_grpc_listen="127.0.0.1:0")
    assert set(listen_keys(every)) == {"grpc_listen", "http_listen", "admin_listen", "admin_grpc_listen"}
    # an empty one is no listener: nothing to check (the sidecar's http_listen)
    assert set(listen_keys(Config(http_listen=""))) == {"grpc_listen"}


def test_a_free_port_and_port_0_pass() -> None:
    check_listen("grpc_listen", "127.0.0.1:0")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    check_listen("grpc_listen", f"127.0.0.1:{free}")


def test_a_port_in_use_is_named_with_the_flag() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = f"127.0.0.1:{holder.getsockname()[1]}"
        with pytest.raises(ListenError) as caught:
            check_listen("http_listen", address, flag="--http-listen")
        expected = f"--http-listen (http_listen): cannot listen on {address}: address already in use"
        assert str(caught.value) == f"{expected} (another process listens there)"
        check_listen("http_listen", address, in_use_ok=True)


@pytest.mark.parametrize(
    ("address", "says"),
    [("192.0.2.1:4319", "not an address of this machine"), ("no-such-host.invalid:4319", "cannot resolve")],
)
def test_addresses_not_here(address: str, says: str) -> None:
    with pytest.raises(ListenError, match=f"^grpc_listen: cannot listen on {address}: {says}"):
        check_listen("grpc_listen", address, in_use_ok=True)
