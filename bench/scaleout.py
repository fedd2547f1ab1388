"""Scale-out figures: ingest on PostgreSQL with 1 and 2 server processes, and a large artifact up and down
presigned (bucket on a loopback moto_server) against proxied (local artifact folder).

    python -m bench.scaleout [--postgres ADMIN_URL] [--points 400000] [--clients 4] [--artifact-mb 1024]

Needs PostgreSQL (``scripts/postgres-up``) and ``pip install -e '.[s3,test]'`` (boto3, moto_server).
Server CPU is the user+system time of the ``cairn server`` process tree (the bucket's process excluded).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.systems import _tree, drop_database, free_port, fresh_database

ADMIN_URL = "postgresql+psycopg://cairn:cairn@127.0.0.1:5432/postgres"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    total = 0
    for child in _tree(pid):
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def start_server(home: Path, store: str, root: str, workers: int, env: dict[str, str]) -> tuple[Any, str]:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = (home / "server.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "cairn", "server", "--port", str(port), "--store-uri", store,
                             "--artifact-root", root, "--workers", str(workers)],
                            env={**os.environ, "CAIRN_HOME": str(home), **env}, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError((home / "server.log").read_text()[-2000:])
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def stop(proc: Any) -> None:
    proc.terminate()
    proc.wait(30)


def _ingest_client(url: str, batches: int, start: Any, out: Any) -> None:
    """One client process: its own run, batches of 1,000 points (10 keys x 100 steps), kept-alive."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("POST", "/api/v1/runs", body=json.dumps({"experiment_name": "scale"}),
                 headers={"Content-Type": "application/json"})
    run_id = json.loads(conn.getresponse().read())["run_id"]
    bodies = [json.dumps({"metrics": [{"key": f"k{k}", "steps": list(range(b * 100, b * 100 + 100)),
                                       "values": [float(s) for s in range(100)]} for k in range(10)]})
              for b in range(batches)]
    start.wait()
    for body in bodies:
        conn.request("POST", f"/api/v1/runs/{run_id}/batch", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        assert response.status == 200, response.status
    out.put(time.perf_counter())


def ingest(url: str, pid: int, points: int, clients: int) -> dict[str, float]:
    batches = max(1, points // clients // 1000)
    context = multiprocessing.get_context("fork")
    start, out = context.Event(), context.Queue()
    procs = [context.Process(target=_ingest_client, args=(url, batches, start, out)) for _ in range(clients)]
    for proc in procs:
        proc.start()
    time.sleep(2)  # every client has its run and its bodies
    cpu = cpu_seconds(pid)
    began = time.perf_counter()
    start.set()
    ends = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(60)
    total = batches * 1000 * clients
    return {"points_per_s": total / (max(ends) - began), "server_cpu_s": cpu_seconds(pid) - cpu}


def transfer(url: str, pid: int, size_mb: int, tmp: Path) -> dict[str, float]:
    """Upload then download one ``size_mb`` file through the SDK; MB/s each way and server CPU s per GB."""
    os.environ["CAIRN_TRACKING_URI"] = url
    import cairn

    client = cairn.Client(url)
    source = tmp / "big.bin"
    with source.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1024 * 1024))
    run = client.create_run("transfer")
    cpu = cpu_seconds(pid)
    began = time.perf_counter()
    version = client.upload_artifact(run.id, source, "big.bin")
    up = time.perf_counter() - began
    cpu_up = cpu_seconds(pid) - cpu
    began = time.perf_counter()
    local = Path(client.download_artifact(run.id, "big.bin", tmp / "down"))
    down = time.perf_counter() - began
    cpu_down = cpu_seconds(pid) - cpu - cpu_up
    with local.open("rb") as handle:
        assert "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest() == version.digest
    gb = size_mb / 1024
    return {"up_mb_s": size_mb / up, "down_mb_s": size_mb / down, "server_cpu_s_per_gb_up": cpu_up / gb,
            "server_cpu_s_per_gb_down": cpu_down / gb}


def moto() -> tuple[Any, dict[str, str]]:
    port = free_port()
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.put(f"{endpoint}/bench", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    env = {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    return proc, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout")
    parser.add_argument("--postgres", default=ADMIN_URL, help="admin URL: a fresh database is made beside it")
    parser.add_argument("--points", type=int, default=400_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--artifact-mb", type=int, default=1024)
    parser.add_argument("--only", default="ingest,artifacts")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count()}}
    with tempfile.TemporaryDirectory(prefix="cairn-scaleout-") as tmp_name:
        tmp = Path(tmp_name)
        if "ingest" in args.only:
            for workers in (1, 2):
                url = fresh_database(args.postgres, f"cairn_scaleout_{os.getpid()}_{workers}")  # runs beside others
                store = url.replace("postgresql://", "postgresql+psycopg://")
                proc, base = start_server(tmp / f"ingest-{workers}", store, str(tmp / "a"), workers, {})
                try:
                    results[f"ingest_{workers}_processes"] = ingest(base, proc.pid, args.points, args.clients)
                finally:
                    stop(proc)
                    drop_database(args.postgres, url)
            results["ingest_ratio_2_over_1"] = (results["ingest_2_processes"]["points_per_s"]
                                                / results["ingest_1_processes"]["points_per_s"])
        if "artifacts" in args.only:
            bucket, env = moto()
            os.environ.update(env)
            try:
                for mode, root in (("proxied", str(tmp / "artifacts")), ("presigned", "s3://bench/cairn")):
                    proc, base = start_server(tmp / mode, f"sqlite:///{tmp / mode}.db", root, 1, env)
                    try:
                        work = tmp / f"{mode}-files"
                        work.mkdir()
                        results[f"artifact_{mode}"] = transfer(base, proc.pid, args.artifact_mb, work)
                    finally:
                        stop(proc)
                        shutil.rmtree(tmp / f"{mode}-files", ignore_errors=True)
            finally:
                bucket.terminate()
                bucket.wait(30)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
