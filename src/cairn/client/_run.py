"""Active runs: ``cairn.start_run`` and the logging calls that never block training.

Every write of a run goes through the process's Sender (``_sender``): metrics, params and tags are
buffered per run and sent as batches by a background thread, and ``finish`` sends the run's end with
its last batch, in one request; other writes are queued in order behind them. Only ``log_artifact``
and the first creation of a run try the server synchronously, so that mistakes there (a bad path, an
unknown experiment) are raised at once; if the server cannot be reached they too are queued, and
spooled to disk if it stays away.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import operator
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from cairn._wire import LoggedModel
from cairn.client._client import (
    Client,
    close_transports,
    describe_unit,
    folder_uploads,
    forget_transports,
    run_many,
    shared_transport,
    upload_file,
    upload_unit,
    upload_units,
)
from cairn.client._config import Config
from cairn.client._conventions import Compliance, compliance_of, developer, filled_tags, warn_once
from cairn.client._errors import APIError, CairnError, ConflictError, RateLimitedError, ServerError, TransportError
from cairn.client._ids import TAG_LEN, follow, new_run_id, note_created, workspace_tag
from cairn.client._sender import Op, RetryableError, Sender
from cairn.client._source import source_tags, user
from cairn.client._transport import Transport

log = logging.getLogger("cairn")
_senders: dict[tuple[str, str, str | None], Sender] = {}
_senders_lock = threading.Lock()
_active: list[ActiveRun] = []


def _op(method: str, path: str, body: Any = None, run_id: str | None = None, **kw: Any) -> Op:
    data = orjson.dumps(body) if body is not None else None
    return Op(method=method, path=path, body=data, idempotency_key=uuid.uuid4().hex, run_id=run_id, **kw)


def make_send(transport: Transport) -> Any:
    """Turn the transport's errors into the Sender's: retry what may succeed later, drop the rest."""
    renamed: dict[str, str] = {}  # ids of runs the server stored under another id than the one proposed

    def send(op: Op) -> None:
        op = follow(op, renamed)
        headers = {"Idempotency-Key": op.idempotency_key}
        if op.body is not None:
            headers["Content-Type"] = "application/json"
        try:
            if op.file is not None:
                with open(op.file, "rb") as handle:
                    answer = transport.request(op.method, op.path, content=handle.read(), params=list(op.params),
                                               headers=headers)
            else:
                answer = transport.request(op.method, op.path, content=op.body, params=list(op.params),
                                           headers=headers)
        except (TransportError, ServerError, RateLimitedError) as exc:
            raise RetryableError(str(exc)) from exc
        note_created(op, answer, renamed)
    return send


def make_probe(transport: Transport) -> Any:
    def probe() -> bool:
        try:
            transport.request("GET", "/health")
        except CairnError:
            return False
        return True
    return probe


def sender_for(config: Config) -> Sender:
    key = (config.target, config.workspace, config.token)
    with _senders_lock:
        if key not in _senders:
            transport = shared_transport(config)
            _senders[key] = Sender(make_send(transport), make_probe(transport), spool_dir=config.home / "spool",
                                   target=config.target, workspace=config.workspace, offline=config.offline,
                                   retry_timeout=config.retry_timeout)
        return _senders[key]


def shutdown() -> None:
    """Flush and stop every sender, then close connections (also run at interpreter exit)."""
    with _senders_lock:
        senders = list(_senders.values())
        _senders.clear()
    for sender in senders:
        sender.close(timeout=sender_close_timeout(sender))
    close_transports()


def sender_close_timeout(sender: Sender) -> float:
    return float(getattr(sender, "retry_timeout", 30.0)) + 5.0


atexit.register(shutdown)
_fork_generation = 0
_inherited_senders: list[Sender] = []


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing's workers: Kedro's ParallelRunner, DataLoader workers) inherits the
    parent's senders without their threads, and its connections: it must make its own. Nothing inherited is
    closed (the parent still uses it); runs active in the parent get a new sender on their next write."""
    global _senders_lock, _fork_generation
    _senders_lock = threading.Lock()
    _inherited_senders.extend(_senders.values())  # kept, never collected (see forget_transports)
    _senders.clear()
    forget_transports()
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_number(key: str, value: Any) -> float:
    if isinstance(value, str | bytes) or value is None:
        raise TypeError(f"metric {key!r}: value must be a number, got {type(value).__name__} {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metric {key!r}: value must be a number, got {type(value).__name__}") from exc


def _check_step(step: Any) -> int:
    if isinstance(step, bool):
        raise TypeError(f"step must be an integer, got {step!r}")
    try:
        return operator.index(step)
    except TypeError as exc:
        raise TypeError(f"step must be an integer, got {type(step).__name__} {step!r}") from exc


class ActiveRun:
    """A run being logged to. Use as a context manager: an exception inside marks it FAILED."""

    def __init__(self, config: Config, run_id: str, name: str | None, experiment: str | int | None) -> None:
        self.config = config
        self.id = run_id
        self.name = name
        self.experiment = experiment
        self.status = "RUNNING"
        self.joined = False  # the run existed before this process started it (see start_run)
        self.end_on_exit = True
        self._own_sender = sender_for(config)
        self._generation = _fork_generation
        self._steps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._explicit: set[str] = set()  # tags the user set: the SDK never fills these in
        self._conventions = False  # conventions are in force for the run (the server said so when it began)

    @property
    def _sender(self) -> Sender:
        """This process's sender for the run (a forked child makes its own: see _after_fork_in_child)."""
        if self._generation != _fork_generation:
            self._own_sender, self._generation = sender_for(self.config), _fork_generation
        return self._own_sender

    # metrics -----------------------------------------------------------------------------------------
    def log_metric(self, key: str, value: float, step: int | None = None, timestamp: int | None = None) -> None:
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None,
                    timestamp: int | None = None) -> None:
        """Queue values; returns at once. Without ``step``, each key counts its own steps from 0."""
        values = {k: _check_number(k, v) for k, v in metrics.items()}
        stamp = int(time.time() * 1000) if timestamp is None else int(timestamp)
        if step is not None:
            checked = _check_step(step)
            with self._lock:
                for key in values:
                    self._steps[key] = max(self._steps.get(key, -1), checked)
            self._sender.log_metrics(self.id, values, checked, stamp)
            return
        with self._lock:
            per_key = {k: self._steps.get(k, -1) + 1 for k in values}
            self._steps.update(per_key)
        for key, value in values.items():
            self._sender.log_metrics(self.id, {key: value}, per_key[key], stamp)

    def define_metric(self, key: str, goal: str | None = "min") -> None:
        """Declare that lower (``goal="min"``) or higher (``"max"``) is better: adds best and best_step."""
        if goal not in ("min", "max", None):
            raise ValueError(f"goal must be 'min', 'max' or None, got {goal!r}")
        self._enqueue("POST", f"/api/v1/runs/{self.id}/metrics/define", {"key": key, "goal": goal})

    # params, tags, datasets --------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Logging a key again with another value records it in the param's history."""
        body = {k: (v if isinstance(v, str | int | float | bool) else str(v)) for k, v in params.items()}
        self._sender.log_params(self.id, body)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._explicit.update(tags)
        self._sender.set_tags(self.id, {k: str(v) for k, v in tags.items()})

    @property
    def compliance(self) -> Compliance:
        """Which conventions the run meets and which it misses (everything logged so far is sent first)."""
        self._sender.flush(timeout=self.config.retry_timeout + 5)
        return compliance_of(shared_transport(self.config), self.id)

    def delete_tag(self, key: str) -> None:
        self._enqueue("DELETE", f"/api/v1/runs/{self.id}/tags", None, params=(("key", key),))

    def log_dataset(self, name: str, uri: str = "", digest: str = "", version: str = "", role: str = "") -> None:
        """Reference a dataset (never uploaded): name, where it lives, its digest, version and role."""
        body = {"name": name, "uri": uri, "digest": digest, "version": version, "role": role}
        self._enqueue("POST", f"/api/v1/runs/{self.id}/datasets", body)

    def _enqueue(self, method: str, path: str, body: Any, **kw: Any) -> None:
        self._sender.enqueue(_op(method, path, body, run_id=self.id, **kw))

    # artifacts ---------------------------------------------------------------------------------------
    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file into the folder ``artifact_path`` of the run (the root by default).
        Logging the same path again makes a new version."""
        source = Path(local_path)
        if not source.is_file():
            raise FileNotFoundError(f"no such file: {source}")
        self._upload(source, _join(artifact_path, source.name))

    def log_artifacts(self, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload every file under ``local_dir``, keeping its layout, into ``artifact_path``; several files
        go at once. A file the server refuses raises (naming it) once the files in flight are done; a file
        that cannot reach the server is queued like ``log_artifact``'s."""
        units = upload_units(folder_uploads(Path(local_dir), artifact_path))
        self._sender.flush(timeout=self.config.retry_timeout + 5)
        run_many(shared_transport(self.config),
                 [(describe_unit(unit), partial(self._upload_unit, unit)) for unit in units])

    def _upload(self, source: Path, path: str) -> None:
        self._sender.flush(timeout=self.config.retry_timeout + 5)
        self._upload_now(source, path)

    def _upload_unit(self, unit: list[tuple[Path, str]]) -> None:
        if not self._sender.spooled and not self.config.offline:
            try:
                upload_unit(shared_transport(self.config), self.id, unit)
                return
            except (TransportError, ServerError, RateLimitedError) as exc:
                log.warning("cairn: upload of %s deferred: %s", describe_unit(unit), exc)
        for source, path in unit:
            self._stage(source, path)

    def _upload_now(self, source: Path, path: str) -> None:
        if not self._sender.spooled and not self.config.offline:
            try:
                upload_file(shared_transport(self.config), self.id, source, path)
                return
            except (TransportError, ServerError, RateLimitedError) as exc:
                log.warning("cairn: upload of %s deferred: %s", path, exc)
        self._stage(source, path)

    def _stage(self, source: Path, path: str) -> None:
        staged = self.config.home / "staging" / uuid.uuid4().hex
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, staged)
        self._sender.enqueue(_op("PUT", f"/api/v1/runs/{self.id}/artifacts", None, run_id=self.id,
                                 params=(("path", path),), file=str(staged)))

    # models ------------------------------------------------------------------------------------------
    # log_model's options are keyword-only: their count is no trap
    def log_model(self, model: Any, name: str = "model", *, flavor: str | None = None,  # noqa: PLR0913
                  signature: dict[str, Any] | None = None, input_example: Any = None,
                  requirements: list[str] | None = None, registered_model_name: str | None = None,
                  tags: Mapping[str, str] | None = None, aliases: list[str] | None = None, step: int | None = None,
                  extra_files: Mapping[str, str | os.PathLike[str]] | None = None) -> Any:
        """Save ``model`` as a folder (flavor detected: sklearn, pytorch, or any object with predict),
        upload it into the run, and with ``registered_model_name`` register it, tag it and set its aliases
        in the same call. Returns the ModelVersion when registered, else the LoggedModel. Pass ``step=``
        to keep several checkpoints of one model. Needs the server (it is not queued)."""
        from cairn.client._flavors import save_model

        self._sender.flush(timeout=self.config.retry_timeout + 5)
        client = Client(self.config.tracking_uri, token=self.config.token, workspace=self.config.workspace)
        if any(m.name == name and m.step == step for m in client.list_logged_models(self.id)):
            raise ConflictError(409, f"run {self.id} already has a model {name!r} at this step; "
                                "pass step= for checkpoints", "RESOURCE_ALREADY_EXISTS", "name")
        with tempfile.TemporaryDirectory(prefix="cairn-model-") as tmp:
            folder = Path(tmp) / "model"
            manifest = save_model(model, folder, flavor=flavor, input_example=input_example, signature=signature,
                                  requirements=requirements,
                                  extra_files={k: Path(v) for k, v in (extra_files or {}).items()})
            base = f"models/{name}" if step is None else f"models/{name}/step-{_check_step(step)}"
            transport = shared_transport(self.config)
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                upload_file(transport, self.id, file, f"{base}/{file.relative_to(folder).as_posix()}")
            body = {"name": name, "artifact_path": base, "manifest": manifest, "step": step}
            logged = LoggedModel.from_json(transport.request("POST", f"/api/v1/runs/{self.id}/logged-models",
                                                             json=body))
        if "framework" not in self._explicit and manifest.get("flavor") not in (None, "pyfunc"):
            self._sender.set_tags(self.id, {"framework": str(manifest["flavor"])})  # the model says best
        if registered_model_name is None:
            return logged
        return client.register_model(logged.id, registered_model_name, tags=dict(tags or {}), aliases=aliases)

    # lifecycle ---------------------------------------------------------------------------------------
    def finish(self, status: str = "FINISHED") -> None:
        """Mark the run ended and flush everything logged (sent, or spooled if the server is away)."""
        if self.status != "RUNNING":
            return
        self.status = status.upper()
        self._sender.end_run(self.id, self.status, int(time.time() * 1000))
        self._sender.flush(timeout=self.config.retry_timeout + 5)
        if self in _active:
            _active.remove(self)
        for error in self._sender.errors:
            log.warning("cairn: a write of run %s was refused: %s", self.id, error)
        if self._conventions:
            with contextlib.suppress(CairnError):  # the server is away: the report waits for `cairn runs check`
                warn_once(self.id, compliance_of(shared_transport(self.config), self.id))

    def detach(self) -> None:
        """Stop using the run in this process without ending it: flush what was logged (sent, or spooled)
        and leave the run RUNNING for the process that ends it."""
        if self.status != "RUNNING":
            return
        self._sender.flush(timeout=self.config.retry_timeout + 5)
        if self in _active:
            _active.remove(self)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            if self.end_on_exit:
                self.finish("FINISHED")
            else:
                self.detach()
        elif issubclass(kind, KeyboardInterrupt):
            self.finish("KILLED")
        else:
            self.finish("FAILED")

    def __repr__(self) -> str:
        return f"<ActiveRun {self.id} name={self.name!r} status={self.status}>"


def _join(folder: str | None, name: str) -> str:
    return f"{folder.strip('/')}/{name}" if folder and folder.strip("/") else name


# start_run's options are keyword-only: their count is no trap
def start_run(experiment: str | int | None = None, *, name: str | None = None, tags: Mapping[str, Any] | None = None,  # noqa: PLR0913
              parent_run_id: str | None = None, nested: bool = True, workspace: str | None = None,
              tracking_uri: str | None = None, capture_source: bool = True, run_id: str | None = None,
              run_key: str | None = None, end_on_exit: bool | None = None, token: str | None = None,
              source_dir: str | os.PathLike[str] | None = None) -> ActiveRun:
    """Start a run in ``experiment`` (a name, created if missing, or an id; "Default" if omitted).

    A run started while another is active becomes its child unless ``nested=False``. The run's source tags
    record the git state of ``source_dir`` (default: the entry point's folder).

    Joining a run, so that several processes or invocations write into one:

    - ``run_id=...`` resumes that run (``experiment`` is not needed);
    - ``run_key=...`` gets the run with this key in ``experiment``, or creates it: processes that ask for one
      key at the same moment all get the same run (the store keeps keys unique).

    A joined run that had ended is RUNNING again. ``run.joined`` tells whether the run existed before.

    Who ends a run: ``finish()`` always ends it. Leaving the ``with`` block ends a run this call created;
    a joined run is left RUNNING for whoever owns it (a worker must not end its pipeline's run), unless
    ``end_on_exit=True``. An exception inside the block ends either kind FAILED (KILLED on Ctrl-C).

    ``tracking_uri``, ``token`` and ``workspace`` default to CAIRN_TRACKING_URI, CAIRN_TOKEN and
    CAIRN_WORKSPACE; passing them lets one process log to several servers or as several identities.
    """
    if run_id is not None and run_key is not None:
        raise ValueError("pass run_id (resume that run) or run_key (get or create the run with that key), not both")
    config = Config.from_env(tracking_uri, token, workspace)
    user_tags = {k: str(v) for k, v in (tags or {}).items()}
    if run_id is not None:
        return _resume(config, run_id, experiment, user_tags, end_on_exit=end_on_exit)
    if parent_run_id is None and nested and _active:
        parent_run_id = _active[-1].id
    source = Path(source_dir) if source_dir is not None else None
    all_tags = {**(source_tags(source) if capture_source else {}), **user_tags}
    if capture_source:
        who = developer(shared_transport(config), config.tracking_uri, config.token) if not config.offline else None
        all_tags.update(filled_tags(user_tags, who))
    workspace = config.workspace
    proposed = keyed_run_id(workspace, experiment, run_key) if run_key is not None else new_run_id(workspace)
    run = ActiveRun(config, proposed, name, experiment)
    body: dict[str, Any] = {"run_id": run.id, "name": name, "tags": all_tags, "parent_run_id": parent_run_id,
                            "start_time": int(time.time() * 1000), "user": user()}
    if run_key is not None:
        body["run_key"] = run_key
    body["experiment_id" if isinstance(experiment, int) else "experiment_name"] = experiment
    run._explicit = set(user_tags)
    _create(run, body)
    run.end_on_exit = not run.joined if end_on_exit is None else end_on_exit
    _active.append(run)
    return run


def keyed_run_id(workspace: str, experiment: str | int | None, run_key: str) -> str:
    """The id a process proposes for the run with ``run_key``: the same in every process, so that runs
    made while the server is away (spooled) come together when they are synced. The server keeps the
    run that first took the key; a process online uses the id it answers."""
    material = "\x00".join(("cairn-run-key", workspace, repr(experiment), run_key)).encode()
    return workspace_tag(workspace) + hashlib.sha256(material).hexdigest()[: 32 - TAG_LEN]


def _resume(config: Config, run_id: str, experiment: str | int | None, tags: dict[str, str], *,
            end_on_exit: bool | None) -> ActiveRun:
    """Resume ``run_id``: one request that checks it exists and makes it RUNNING again if it had ended.
    When the server is unreachable the resumption is queued with everything after it."""
    run = ActiveRun(config, run_id, None, experiment)
    run.joined = True
    run.end_on_exit = bool(end_on_exit)
    path = f"/api/v1/runs/{run_id}/resume"
    if not config.offline and not run._sender.spooled:
        try:
            data = shared_transport(config).request("POST", path)
            run.name, run.experiment = data["name"], data["experiment_name"]
        except (TransportError, ServerError, RateLimitedError) as exc:
            log.warning("cairn: the server is unreachable (%s); resuming run %s is queued", exc, run_id)
            run._enqueue("POST", path, None)
    else:
        run._enqueue("POST", path, None)
    if tags:
        run.set_tags(tags)
    _active.append(run)
    return run


def _create(run: ActiveRun, body: dict[str, Any]) -> None:
    create = _op("POST", "/api/v1/runs", body, run_id=run.id)
    if not run.config.offline and not run._sender.spooled:
        try:
            data = shared_transport(run.config).request("POST", "/api/v1/runs", json=body,
                                                        headers={"Idempotency-Key": create.idempotency_key})
            run.name, run.id = data["name"], data["run_id"]
            run.joined = not data.get("created", True)
            run._conventions = data.get("compliant") is not None
            return
        except (TransportError, ServerError, RateLimitedError) as exc:
            log.warning("cairn: the server is unreachable (%s); run %s is queued and will be sent later", exc, run.id)
        except APIError:
            raise
    run._sender.enqueue(create)


def active_run() -> ActiveRun | None:
    return _active[-1] if _active else None


def _require_active() -> ActiveRun:
    if not _active:
        raise CairnError("no active run: call cairn.start_run() first")
    return _active[-1]


def log_metric(key: str, value: float, step: int | None = None) -> None:
    _require_active().log_metric(key, value, step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    _require_active().log_metrics(metrics, step)


def log_param(key: str, value: Any) -> None:
    _require_active().log_param(key, value)


def log_params(params: Mapping[str, Any]) -> None:
    _require_active().log_params(params)


def set_tag(key: str, value: Any) -> None:
    _require_active().set_tag(key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    _require_active().set_tags(tags)


def define_metric(key: str, goal: str | None = "min") -> None:
    _require_active().define_metric(key, goal)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _require_active().log_artifact(local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _require_active().log_artifacts(local_dir, artifact_path)


def log_dataset(name: str, uri: str = "", digest: str = "", version: str = "", role: str = "") -> None:
    _require_active().log_dataset(name, uri, digest, version, role)


def log_model(model: Any, name: str = "model", **kwargs: Any) -> Any:
    return _require_active().log_model(model, name, **kwargs)


def finish(status: str = "FINISHED") -> None:
    _require_active().finish(status)


def flush(timeout: float | None = None) -> bool:
    """Wait until everything logged so far is sent (or spooled)."""
    return all(sender.flush(timeout) for sender in list(_senders.values()))

