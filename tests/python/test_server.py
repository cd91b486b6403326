"""The embedded server's lifecycle and its error messages."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pmcost.errors import PmcostError, UsageError
from pmcost.server import HOST, EmbeddedServer


@pytest.fixture
def embedded() -> Iterator[EmbeddedServer]:
    state = Path(tempfile.mkdtemp(prefix="pmcost-server-test-"))
    state.chmod(0o755)
    server = EmbeddedServer(state)
    yield server
    server.destroy()


def test_up_down_up_keeps_data_and_port(embedded: EmbeddedServer) -> None:
    assert embedded.info() is None
    with pytest.raises(PmcostError, match="pmcost up"):
        embedded.require()
    first = embedded.up()
    with psycopg.connect(first.conninfo(), autocommit=True) as conn:
        conn.execute("create table kept (value int)")
        conn.execute("insert into kept values (42)")
    assert embedded.up() == first  # already running: same server
    assert embedded.down() is True
    assert embedded.down() is False
    assert embedded.info() is None
    second = embedded.up()
    assert second.port == first.port and second.password == first.password
    with psycopg.connect(second.conninfo()) as conn:
        assert conn.execute("select value from kept").fetchone() == (42,)


def test_port_in_use_is_a_clear_error(embedded: EmbeddedServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"port {port} on 127.0.0.1 is in use"):
            embedded.up(port=port)


def test_server_listens_on_loopback_with_a_password(embedded: EmbeddedServer) -> None:
    info = embedded.up()
    with psycopg.connect(info.conninfo(), autocommit=True) as conn:
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)
    wrong = psycopg.conninfo.make_conninfo(info.conninfo(), password="wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)
