"""A throwaway MariaDB server for the compatibility suite: `mariadb-install-db` into a
temporary directory, then `mariadbd` on a free port of 127.0.0.1 (the binaries come
from Debian's packages, which scripts/ensure-test-deps installs when missing)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

# Small files, no fsync: throwaway data.
OPTIONS = [
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-flush-method=nosync",
    "--innodb-doublewrite=0",
    "--skip-name-resolve",
]


def _program(*names: str) -> str:
    for name in names:
        for d in ("/usr/sbin", "/usr/bin"):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"{names[0]} not found: run scripts/ensure-test-deps")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MariaDb:
    """The server, with root reachable over its unix socket (no password)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rotor-compat-mariadb-"))
        self.data = self.dir / "data"
        self.socket = str(self.dir / "mysqld.sock")
        self.log = self.dir / "error.log"
        self.port = _free_port()
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [_program("mariadb-install-db", "mysql_install_db"), "--no-defaults",
             f"--datadir={self.data}", "--auth-root-authentication-method=socket",
             "--skip-test-db", f"--tmpdir={self.dir}", *OPTIONS, *as_root],
            check=True, capture_output=True, timeout=120,
        )
        self.proc = subprocess.Popen(
            [_program("mariadbd", "mysqld"), "--no-defaults", f"--datadir={self.data}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--pid-file={self.dir / 'mysqld.pid'}", f"--log-error={self.log}",
             f"--tmpdir={self.dir}", *OPTIONS, *as_root],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.root().close()
                return
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mariadbd did not start:\n{self.log.read_text()[-2000:]}")
                time.sleep(0.2)

    def root(self):
        return pymysql.connect(unix_socket=self.socket, user="root", autocommit=True)

    def execute(self, sql: str, *args) -> None:
        with self.root() as conn, conn.cursor() as cur:
            cur.execute(sql, args)

    def logs_in(self, user: str, password: str) -> bool:
        """Whether `user` / `password` opens a session over TCP."""
        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                            connect_timeout=5).close()
            return True
        except pymysql.err.OperationalError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
