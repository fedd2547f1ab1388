import hashlib, threading
import httpx
from tests.conftest import LiveServer

def test_probe(store_uri, tmp_path):
    server = LiveServer(tmp_path / "h", store_uri, workers=2).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as api:
            run_id = api.post("/api/v1/runs", json={"experiment_name": "e"}).json()["run_id"]
            data = b"w"
            api.put(f"/api/v1/runs/{run_id}/artifacts", params={"path": "models/m/model.pkl"}, content=data)
            man = {"flavor": "pyfunc", "files": {"model.pkl": {"sha256": hashlib.sha256(data).hexdigest(), "size": 1}}}
            api.post(f"/api/v1/runs/{run_id}/logged-models", json={"name": "m", "artifact_path": "models/m", "manifest": man})
            for rnd in range(3):
                name = f"dev.c{rnd}"
                if rnd > 0:
                    api.post("/api/v1/models", json={"name": name})
                barrier = threading.Barrier(8)
                out = []
                def go():
                    with httpx.Client(base_url=server.url, timeout=60) as c:
                        barrier.wait()
                        r = c.post(f"/api/v1/models/{name}/versions", json={"source": f"runs:/{run_id}/m"})
                        out.append((r.status_code, r.json().get("version"), r.text[:150]))
                ts = [threading.Thread(target=go) for _ in range(8)]
                [t.start() for t in ts]; [t.join() for t in ts]
                print(rnd, sorted(out, key=str))
    finally:
        server.stop()
