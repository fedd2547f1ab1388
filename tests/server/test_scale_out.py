"""Three ``cairn server`` processes on one PostgreSQL and one bucket (moto_server), as behind a load
balancer: the SDK and the mlflow client spread over them, registrations and alias moves racing on
different processes, credentials withdrawn through one server refused by the others at once, and a
server killed with SIGKILL in the middle of ingest losing no point it acknowledged."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.server.db.engine import Database
from cairn.server.services import accounts
from tests.conftest import S3_BUCKET, SECRET_KEY, LiveServer, _truncate_postgres

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3]
API = "/api/v1"


class Cluster:
    def __init__(self, servers: list[LiveServer], admin: str) -> None:
        self.servers, self.admin = servers, admin

    def client(self, i: int, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.servers[i].url, timeout=60,
                            headers={"Authorization": f"Bearer {token or self.admin}"})


def make_user(url: str, name: str, *, admin: bool = False) -> str:
    """A service account (no password) and a write token for it (admin scope for an admin), in the store."""
    db = Database(url)
    try:
        with db.session(write=True) as session:
            accounts.create_user(session, "setup", name, None, admin=admin, service=True)
            owner = accounts.get_user(session, name)
            identity = accounts.Identity(owner.id, "setup", True, "admin", "local")
            return accounts.create_token(session, identity, "t", "admin" if admin else "write", None, user=name)[1]
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def cluster(postgres_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _truncate_postgres(postgres_url)
    admin = make_user(postgres_url, "root", admin=True)
    root = f"s3://{S3_BUCKET}/cluster-{os.getpid()}"
    base = tmp_path_factory.mktemp("cluster")
    servers = [LiveServer(base / f"server-{i}", postgres_url, args=("--auth", "--artifact-root", root),
                          env={"CAIRN_SECRET_KEY": SECRET_KEY}) for i in range(3)]
    try:
        for server in servers:
            server.start()
        yield Cluster(servers, admin)
    finally:
        for server in servers:
            server.stop()


def in_threads(work: list[Any]) -> list[Any]:
    """Each function in its own thread, started together; their results in order."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(work))

    def run(i: int) -> None:
        try:
            barrier.wait(30)
            results[i] = work[i]()
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return results


def test_registrations_and_alias_moves_racing_on_three_servers(cluster: Cluster) -> None:
    with cluster.client(0) as api:
        run_id = api.post(f"{API}/runs", json={"experiment_name": "race"}).json()["run_id"]
        data = b"weights"
        assert api.put(f"{API}/runs/{run_id}/artifacts", params={"path": "models/m/w.bin"},
                       content=data).status_code == 201
        import hashlib

        manifest = {"flavor": "pyfunc", "files": {"w.bin": {"sha256": hashlib.sha256(data).hexdigest(), "size": 7}}}
        logged = api.post(f"{API}/runs/{run_id}/logged-models",
                          json={"name": "m", "artifact_path": "models/m", "manifest": manifest}).json()

    def register(i: int) -> int:
        with cluster.client(i % 3) as own:
            answer = own.post(f"{API}/models/dev.race/versions", json={"source": logged["id"]})
            assert answer.status_code == 201, answer.text
            return int(answer.json()["version"])

    versions = in_threads([lambda i=i: register(i) for i in range(12)])
    assert sorted(versions) == list(range(1, 13))

    def move(i: int) -> None:
        with cluster.client(i % 3) as own:
            answer = own.put(f"{API}/models/dev.race/aliases/champion", json={"version": versions[i]})
            assert answer.status_code == 200, answer.text

    in_threads([lambda i=i: move(i) for i in range(12)])
    with cluster.client(1) as api:
        history = api.get(f"{API}/models/dev.race/aliases/champion/history").json()["moves"]
        current = api.get(f"{API}/models/dev.race/aliases/champion").json()["version"]
    chain = [(x["from_version"], x["to_version"]) for x in history]
    assert len(chain) == 12 and chain[0][0] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chain)), chain  # each move starts where the last ended
    assert chain[-1][1] == current


def refused_everywhere_within(cluster: Cluster, token: str, path: str, seconds: float) -> float:
    """How long until every server refuses ``token`` on ``path`` (fails past ``seconds``)."""
    started = time.monotonic()
    pending = {1, 2, 0}
    while pending:
        for i in sorted(pending):
            with cluster.client(i, token) as own:
                if own.get(path).status_code in (401, 403, 404):
                    pending.discard(i)
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"servers {sorted(pending)} still accept the credential after {elapsed:.2f} s"
    return time.monotonic() - started


def test_withdrawn_credentials_stop_working_on_every_server_within_a_second(cluster: Cluster) -> None:
    bob, alice = make_user(cluster.servers[0].store_uri, "bob"), make_user(cluster.servers[0].store_uri, "alice")
    with cluster.client(0) as admin:
        for user in ("bob", "alice"):
            added = admin.post(f"{API}/workspaces/default/members", json={"user": user, "role": "editor"})
            assert added.status_code == 201, added.text
        token = admin.post(f"{API}/tokens", json={"name": "ci", "user": "bob"}).json()
    for i in range(3):  # every server accepts all three first
        for secret in (token["token"], bob, alice):
            with cluster.client(i, secret) as own:
                assert own.get(f"{API}/experiments").status_code == 200
    with cluster.client(0) as admin:
        assert admin.delete(f"{API}/tokens/{token['id']}").status_code == 200
    refused_everywhere_within(cluster, token["token"], f"{API}/experiments", 1.0)
    with cluster.client(1) as admin:
        assert admin.patch(f"{API}/users/bob", json={"disabled": True}).status_code == 200
    refused_everywhere_within(cluster, bob, f"{API}/experiments", 1.0)
    with cluster.client(2) as admin:
        assert admin.delete(f"{API}/workspaces/default/members/users/alice").status_code == 200
    refused_everywhere_within(cluster, alice, f"{API}/experiments", 1.0)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")
def test_sdk_and_mlflow_clients_spread_over_the_servers(cluster: Cluster, sdk_env: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    import cairn

    monkeypatch.setenv("CAIRN_TOKEN", cluster.admin)
    writer = cairn.Client(cluster.servers[0].url)
    run = writer.create_run("spread")
    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))  # past 1 MiB: straight to the bucket
    version = writer.upload_artifact(run.id, big, "weights.bin")
    reader = cairn.Client(cluster.servers[1].url)
    local = reader.download_artifact(run.id, "weights.bin", tmp_path / "out")
    assert Path(local).read_bytes() == big.read_bytes() and version.version == 1
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", cluster.admin)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(cluster.servers[2].url)
    client = mlflow.MlflowClient()
    client.log_metric(run.id, "loss", 0.5, step=1)
    client.log_param(run.id, "lr", "0.1")
    seen = cairn.Client(cluster.servers[0].url).get_run(run.id)
    assert seen.params["lr"] == "0.1" and seen.metrics["loss"].last == 0.5


def wait_until(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_a_server_killed_mid_ingest_loses_no_acknowledged_point(cluster: Cluster) -> None:
    with cluster.client(0) as api:
        run_id = api.post(f"{API}/runs", json={"experiment_name": "ingest"}).json()["run_id"]
    acked: list[set[int]] = [set(), set(), set()]
    stop = threading.Event()

    def ingest(i: int) -> None:
        """Batches of 50 steps of one run, from one writer per server, until stopped or refused."""
        with cluster.client(i) as own:
            for batch in itertools.count():
                if stop.is_set():
                    return
                steps = [i * 10_000_000 + batch * 50 + k for k in range(50)]
                try:
                    answer = own.post(f"{API}/runs/{run_id}/batch", json={
                        "metrics": [{"key": "x", "steps": steps, "values": [float(s) for s in steps]}]})
                except httpx.TransportError:
                    return  # this writer's server is gone: what it acknowledged is all that counts
                if answer.status_code != 200:
                    return
                acked[i].update(steps)

    threads = [threading.Thread(target=ingest, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    wait_until(lambda: all(len(steps) >= 200 for steps in acked))  # every writer is under way
    cluster.servers[2].kill()
    before = [len(steps) for steps in acked]
    # the other servers keep taking batches after the kill (or their writer stopped on a refusal)
    wait_until(lambda: all(len(acked[i]) > before[i] or not threads[i].is_alive() for i in (0, 1)))
    stop.set()
    for thread in threads:
        thread.join(60)
    try:
        with cluster.client(1) as api:
            history = api.get(f"{API}/runs/{run_id}/metrics/history", params={"key": "x"}).json()
            summary = api.get(f"{API}/runs/{run_id}").json()["metrics"]["x"]
        stored = set(history["steps"])
        everything = set().union(*acked)
        assert acked[2] and acked[0] and acked[1], "every writer got some batches in"
        assert everything <= stored, f"{len(everything - stored)} acknowledged points are missing"
        assert summary["count"] == len(stored)
    finally:
        cluster.servers[2].start()
