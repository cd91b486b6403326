"""The embedded server's lifecycle and its error messages."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pmcost import server as server_module
from pmcost.errors import PmcostError, UsageError
from pmcost.server import HOST, SCRAM_ITERATIONS, SERVER_OS_USER, EmbeddedServer, ServerInfo

from .conftest import BIN


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


def _verifier_iterations(conn: psycopg.Connection) -> int:
    row = conn.execute("select rolpassword from pg_authid where rolname = current_user").fetchone()
    assert row is not None
    return int(str(row[0]).split("$")[1].split(":")[0])


def test_the_superuser_verifier_is_cheap_to_connect_with(embedded: EmbeddedServer) -> None:
    """Every dbt node connects anew: the password's SCRAM verifier uses SCRAM_ITERATIONS, on a
    new cluster and, after one `up`, on a cluster made with PostgreSQL's default."""
    assert SCRAM_ITERATIONS < 4096
    info = embedded.up()
    with psycopg.connect(info.conninfo(), autocommit=True) as conn:
        assert _verifier_iterations(conn) == SCRAM_ITERATIONS
        conn.execute("set scram_iterations = 4096")
        conn.execute(
            sql.SQL("alter role current_user password {}").format(sql.Literal(info.password))
        )
        assert _verifier_iterations(conn) == 4096
    embedded.down()
    again = embedded.up()
    with psycopg.connect(again.conninfo(), autocommit=True) as conn:
        assert _verifier_iterations(conn) == SCRAM_ITERATIONS


def _pmcost(state: Path, *args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PMCOST_STATE_DIR": str(state)}
    return subprocess.run(
        [str(BIN / "pmcost"), *args], env=env, capture_output=True, text=True, check=False
    )


def test_up_never_initialises_over_existing_data(embedded: EmbeddedServer) -> None:
    """Finding 6: with server.json lost, `pmcost up` made a new cluster: marts, snapshots and
    history gone without a word; a corrupt server.json gave a raw traceback."""
    first = embedded.up()
    with psycopg.connect(first.conninfo(), autocommit=True) as conn:
        conn.execute("create table kept (value int)")
        conn.execute("insert into kept values (42)")
    assert _pmcost(embedded.state_dir, "down").returncode == 0
    embedded.state_file.unlink()

    lost = _pmcost(embedded.state_dir, "up")
    assert lost.returncode == 1
    assert "pmcost up --recover" in lost.stderr and "Traceback" not in lost.stderr
    assert (Path(first.data_dir) / "PG_VERSION").is_file()  # nothing initialised over it

    recovered = _pmcost(embedded.state_dir, "up", "--recover")
    assert recovered.returncode == 0, recovered.stderr
    info = embedded.require()
    assert info.data_dir == first.data_dir and info.password != first.password
    with psycopg.connect(info.conninfo()) as conn:
        assert conn.execute("select value from kept").fetchone() == (42,)

    embedded.state_file.write_text("{not json")
    corrupt = _pmcost(embedded.state_dir, "status")
    assert corrupt.returncode == 1
    assert corrupt.stderr.count("\n") == 1 and "corrupt" in corrupt.stderr
    assert "pmcost up --recover" in corrupt.stderr
    again = _pmcost(embedded.state_dir, "up", "--recover")  # stops the running server first
    assert again.returncode == 0, again.stderr
    with psycopg.connect(embedded.require().conninfo()) as conn:
        assert conn.execute("select value from kept").fetchone() == (42,)


def test_psql_and_status_never_show_the_password(server: ServerInfo, server_state: Path) -> None:
    """Finding 5: `pmcost psql` passed postgresql://pmcost:<password>@... as an argument, so
    every local user saw the superuser password in `ps`."""
    env = {**os.environ, "PMCOST_STATE_DIR": str(server_state)}
    child = subprocess.Popen(
        [str(BIN / "pmcost"), "psql", "-At", "-c", "select pg_sleep(2), 'answered'"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if "psql" in text or "pmcost" in text:
                    seen.append(text)
            time.sleep(0.05)
    finally:
        out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert "answered" in out
    assert any("select pg_sleep" in line for line in seen)  # the scan saw the processes
    assert not [line for line in seen if server.password in line]
    for command in (["status"], ["up"]):
        shown = _pmcost(server_state, *command)
        assert shown.returncode == 0, shown.stderr
        assert server.password not in shown.stdout + shown.stderr


def test_make_creates_the_server_user_the_server_runs_as() -> None:
    """`make test` creates the server's system user before apt runs beside the first tests."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert f"SERVER_USER := {SERVER_OS_USER}\n" in makefile
    assert "\ntest: server-user\n" in makefile


def test_a_server_user_created_meanwhile_by_another_process_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two test workers, or two `pmcost` commands, starting as root on a new machine: the one
    whose `useradd` loses the race finds the user there and goes on; any other failure is
    still named."""
    server = EmbeddedServer(tmp_path)
    server.os_user = "pmcost-test-user"
    answers = iter([False, True])  # missing before useradd, there after it
    monkeypatch.setattr(server_module, "_user_exists", lambda name: next(answers))
    lost = subprocess.CompletedProcess([], 9, "", "useradd: user already exists")
    monkeypatch.setattr(server_module, "_useradd", lambda name: lost)
    server._ensure_os_user()

    monkeypatch.setattr(server_module, "_user_exists", lambda name: False)
    failed = subprocess.CompletedProcess([], 1, "", "useradd: cannot lock /etc/passwd")
    monkeypatch.setattr(server_module, "_useradd", lambda name: failed)
    with pytest.raises(PmcostError, match="cannot lock /etc/passwd"):
        server._ensure_os_user()
