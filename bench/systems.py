"""The trackers under test: how each is installed, started on a free loopback port with a fresh store,
measured from outside (memory, disk) and stopped.

Peers live in their own virtual environments under ``bench/.peers/<name>``, installed from PyPI at
pinned versions the first time they are needed. Cairn runs from the interpreter running the benchmark.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / ".peers"
PEER_PACKAGES = {
    "mlflow": ["mlflow==3.17.2", "psycopg[binary]==3.3.9"],  # SQLAlchemy 2.1 speaks psycopg 3
    "fasttrackml": ["fasttrackml==0.6.0"],
    "aim": ["aim==3.29.1"],
}
VERSION_OF = {"mlflow": "mlflow", "fasttrackml": "fasttrackml", "aim": "aim"}


@dataclass(frozen=True)
class System:
    name: str  # the column's key
    label: str  # the column's title
    server: str  # which server it starts: cairn, mlflow, fasttrackml, aim
    driver: str  # which driver drives it: cairn_sdk, mlflow_client, aim_sdk
    client_env: str | None  # the peer venv whose Python runs the driver (None: this interpreter)


SYSTEMS = [
    System("cairn", "Cairn", "cairn", "cairn_sdk", None),
    System("cairn-mlflow", "Cairn (MLflow client)", "cairn", "mlflow_client", "mlflow"),
    System("mlflow", "MLflow", "mlflow", "mlflow_client", "mlflow"),
    System("fasttrackml", "FastTrackML", "fasttrackml", "mlflow_client", "fasttrackml"),
    System("aim", "Aim", "aim", "aim_sdk", "aim"),
]


def peer_bin(peer: str, program: str) -> Path:
    return PEERS_DIR / peer / "bin" / program


def ensure_peer(peer: str) -> None:
    """Create the peer's venv and install its pinned packages, unless that exact set is there already."""
    packages = PEER_PACKAGES[peer]
    marker = PEERS_DIR / peer / ".installed"
    if marker.exists() and marker.read_text() == "\n".join(packages):
        return
    print(f"  installing {' '.join(packages)} into {PEERS_DIR / peer} (once)", flush=True)
    shutil.rmtree(PEERS_DIR / peer, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_DIR / peer)], check=True)
    pip = [str(peer_bin(peer, "python")), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *packages], check=True)
    marker.write_text("\n".join(packages))


def peer_version(peer: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({VERSION_OF[peer]!r}))"
    return subprocess.run([str(peer_bin(peer, "python")), "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server: its process, its URL for drivers and where it keeps its data."""

    kind: str
    proc: subprocess.Popen[bytes]
    url: str
    home: Path
    postgres: str | None  # the database URL when the store is PostgreSQL
    db_files: list[Path] = field(default_factory=list)
    repo: Path | None = None  # Aim's repository folder

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def pss_mb(self) -> float:
        """Proportional set size of the server and every process it started, in MB."""
        total = 0
        for pid in _tree(self.proc.pid):
            try:
                text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            total += next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))
        return total / 1024

    def store_bytes(self) -> int:
        """Bytes the metadata store takes now (SQLite checkpointed first; the whole Aim repository)."""
        if self.postgres:
            import psycopg

            with psycopg.connect(plain(self.postgres)) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                return int(row[0]) if row else 0
        if self.repo is not None:
            return sum(p.stat().st_size for p in self.repo.rglob("*") if p.is_file())
        for db in self.db_files:
            if db.exists():
                with sqlite3.connect(db, timeout=30) as conn:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for db in self.db_files for p in db.parent.glob(db.name + "*"))


def _tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def plain(url: str) -> str:
    """A libpq URL from a SQLAlchemy one."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def fresh_database(admin_url: str, name: str) -> str:
    """Create an empty database next to ``admin_url``'s and return its libpq URL."""
    import psycopg

    with psycopg.connect(plain(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = plain(admin_url).rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_database(admin_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(plain(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def start(kind: str, root: Path, admin_url: str | None) -> Server:
    home = root / f"{kind}-{uuid.uuid4().hex[:6]}"
    home.mkdir(parents=True)
    port = free_port()
    pg = fresh_database(admin_url, f"bench_{kind}_{os.getpid()}") if admin_url and kind != "aim" else None
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    db_files: list[Path] = []
    repo: Path | None = None
    if kind == "cairn":
        command = [sys.executable, "-m", "cairn", "server", "--host", "127.0.0.1", "--port", str(port)]
        if pg:
            command += ["--store-uri", pg.replace("postgresql://", "postgresql+psycopg://")]
        env["CAIRN_HOME"] = str(home)
        db_files, url, probe = [home / "cairn.db"], f"http://127.0.0.1:{port}", "/health"
    elif kind == "mlflow":
        store = pg or f"sqlite:///{home / 'mlflow.db'}"
        command = [str(peer_bin("mlflow", "mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
                   "--backend-store-uri", store, "--artifacts-destination", str(home / "artifacts")]
        db_files, url, probe = [home / "mlflow.db"], f"http://127.0.0.1:{port}", "/health"
    elif kind == "fasttrackml":
        store = pg.replace("postgresql://", "postgres://") if pg else f"sqlite://{home / 'fml.db'}"
        command = [str(peer_bin("fasttrackml", "fml")), "server", "--listen-address", f"127.0.0.1:{port}",
                   "--database-uri", store, "--default-artifact-root", str(home / "artifacts"), "-l", "warn"]
        db_files, url, probe = [home / "fml.db"], f"http://127.0.0.1:{port}", "/health"
    elif kind == "aim":
        repo = home / "repo"
        repo.mkdir()
        subprocess.run([str(peer_bin("aim", "aim")), "init", "--repo", str(repo), "-y"], check=True,
                       capture_output=True, env=env)
        command = [str(peer_bin("aim", "aim")), "server", "--host", "127.0.0.1", "-p", str(port),
                   "--repo", str(repo), "-y"]
        url, probe = f"aim://127.0.0.1:{port}", ""
    else:
        raise ValueError(kind)
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=home, start_new_session=True)
    server = Server(kind, proc, url, home, pg, db_files, repo)
    _wait_ready(server, port, probe)
    return server


def _wait_ready(server: Server, port: int, probe: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            if probe:
                if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2).status_code == 200:
                    return
            else:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                time.sleep(1.0)  # the port opens before the app has loaded
                return
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.2)
    server.stop()
    tail = (server.home / "server.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"{server.kind} server did not start on port {port}:\n{tail}")
