"""``authq.ports.check_can_listen`` against real sockets on loopback: a free port passes (and is
left free), one another socket listens on is refused in words that name ``--port``, and an
address that is not this machine's is refused naming ``--host``."""

from __future__ import annotations

import socket

import pytest

from authq.ports import check_can_listen
from authq.redis_server import free_port
from tasks.errors import ConfigError


def test_a_free_port_passes_and_stays_free() -> None:
    port = free_port()
    check_can_listen("127.0.0.1", port)
    with socket.create_server(("127.0.0.1", port)):   # the check listened on nothing
        pass


@pytest.mark.parametrize("listening_on", ["127.0.0.1", "0.0.0.0"])
def test_a_port_another_socket_listens_on_is_refused(listening_on: str) -> None:
    with socket.create_server((listening_on, 0)) as other:
        port = other.getsockname()[1]
        with pytest.raises(ConfigError) as refused:
            check_can_listen("127.0.0.1", port)
    assert str(refused.value) == (f"port {port} is in use on 127.0.0.1 (another program listens there); "
                                  "choose another with --port.")


def test_an_address_that_is_not_this_machine_s_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        check_can_listen("192.0.2.1", free_port())    # TEST-NET-1: on no interface here
    assert "--host" in str(refused.value)
