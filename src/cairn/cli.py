"""The ``cairn`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

import cairn
from cairn._cli_admin import admin
from cairn._cli_output import _emit_json, _fail, _table, _when


@click.group()
@click.version_option(cairn.__version__, prog_name="cairn")
def main() -> None:
    """Cairn: experiment tracking, model registry and collaboration."""


main.add_command(admin)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--store-uri", envvar="CAIRN_STORE_URI", help="sqlite:///PATH or postgresql+psycopg://...")
@click.option("--artifact-root", envvar="CAIRN_ARTIFACT_ROOT",
              help="A folder, or s3://BUCKET/PREFIX (credentials and endpoint from the standard AWS variables).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--auth/--no-auth", default=False, envvar="CAIRN_AUTH",
              help="Require sign-in or a token on every request (users come from `cairn admin create-user`).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Allow listening on a non-loopback address without --auth (trusted networks only).")
@click.option("--allowed-host", "allowed_hosts", multiple=True,
              help="A name this server answers to besides localhost (Host header check; repeatable; '*' for any).")
@click.option("--metrics/--no-metrics", default=False, envvar="CAIRN_METRICS",
              help="Serve Prometheus metrics at /metrics.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", envvar="CAIRN_LOG_FORMAT",
              show_default=True, help="json: one JSON object per log line.")
def server(host: str, port: int, store_uri: str | None, artifact_root: str | None, workers: int, auth: bool,
           insecure_no_auth: bool, allowed_hosts: tuple[str, ...], metrics: bool, log_format: str) -> None:
    """Serve the tracking API (default store: the embedded SQLite under CAIRN_HOME)."""
    from cairn.server.db.engine import SchemaTooNewError
    from cairn.server.runner import serve
    from cairn.server.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()  # CAIRN_* variables first; the flags (which also read them) win
        settings.store_uri, settings.artifact_root = store_uri, artifact_root
        settings.host, settings.port, settings.workers = host, port, workers
        settings.auth, settings.insecure_no_auth = auth, insecure_no_auth
        settings.allowed_hosts = [*allowed_hosts, *settings.allowed_hosts]
        settings.metrics, settings.log_format = metrics, log_format
        settings.check_startup()
        settings.check_artifact_store()
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"cairn {cairn.__version__} serving http://{host}:{port} "
               f"(store: {_redact(settings.resolved_store_uri)}, artifacts: {settings.resolved_artifact_root}, "
               f"auth: {'on' if auth else 'off'}, workers: {workers})")
    try:
        serve(settings)
    except SchemaTooNewError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _redact(uri: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(uri).render_as_string(hide_password=True)


@main.group()
def db() -> None:
    """The metadata store's schema."""


@db.command("upgrade")
@click.option("--store-uri", envvar="CAIRN_STORE_URI")
def db_upgrade(store_uri: str | None) -> None:
    """Apply pending schema migrations."""
    from cairn.server.db.engine import Database, current_revision
    from cairn.server.settings import Settings

    database = Database(Settings(store_uri=store_uri).resolved_store_uri)
    database.upgrade()
    click.echo(f"schema at revision {current_revision(database.engine)}")


@main.command()
@click.option("--dry-run", is_flag=True, help="List what would be uploaded.")
def sync(dry_run: bool) -> None:
    """Upload runs spooled while the server was unreachable (or in CAIRN_MODE=offline)."""
    from cairn.client._sync import sync_spool

    sync_spool(dry_run=dry_run, echo=click.echo)


@main.group()
def experiments() -> None:
    """Experiments."""


@experiments.command("list")
@click.option("--all", "include_deleted", is_flag=True, help="Include deleted experiments.")
@click.option("--json", "as_json", is_flag=True)
def experiments_list(include_deleted: bool, as_json: bool) -> None:
    try:
        found = cairn.Client().list_experiments(include_deleted=include_deleted)
    except cairn.CairnError as exc:
        _fail(exc)
    if as_json:
        _emit_json([e.__dict__ for e in found])
        return
    _table(["ID", "NAME", "RUNS", "LAST ACTIVITY", "STATE"],
           [[e.id, e.name, e.run_count, _when(e.last_activity), e.lifecycle] for e in found])


@main.group()
def runs() -> None:
    """Runs."""


@runs.command("list")
@click.option("--experiment", "-e", required=True, help="Experiment name or id.")
@click.option("--filter", "filter_", default=None, help="e.g. \"metrics.val_loss.min < 0.3\"")
@click.option("--order-by", multiple=True, help="e.g. \"metrics.val_loss.min ASC\" (repeatable)")
@click.option("--max-results", default=100, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
def runs_list(experiment: str, filter_: str | None, order_by: tuple[str, ...], max_results: int,
              as_json: bool) -> None:
    key: str | int = int(experiment) if experiment.isdigit() else experiment
    try:
        found = cairn.Client().search_runs(key, filter=filter_, order_by=list(order_by), max_results=max_results)
    except cairn.CairnError as exc:
        _fail(exc)
    if as_json:
        _emit_json([_run_json(r) for r in found])
        return
    _table(["RUN ID", "NAME", "STATUS", "STARTED", "USER", "METRICS (last)"],
           [[r.id, r.name, r.status, _when(r.start_time), r.user,
             ", ".join(f"{k}={_fmt(m.last)}" for k, m in list(r.metrics.items())[:4])] for r in found])


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _run_json(run: cairn.Run) -> dict[str, Any]:
    data = dict(run.__dict__)
    data["metrics"] = {k: m.__dict__ for k, m in run.metrics.items()}
    data["datasets"] = [d.__dict__ for d in run.datasets]
    return data


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def runs_show(run_id: str, as_json: bool) -> None:
    try:
        run = cairn.Client().get_run(run_id)
    except cairn.CairnError as exc:
        _fail(exc)
    if as_json:
        _emit_json(_run_json(run))
        return
    click.echo(f"run {run.id}  {run.name}  [{run.status}]  experiment {run.experiment_name} ({run.experiment_id})")
    click.echo(f"started {_when(run.start_time)}  ended {_when(run.end_time)}  user {run.user}")
    if run.params:
        click.echo("\nparams")
        _table(["KEY", "VALUE"], [[k, v] for k, v in sorted(run.params.items())])
    if run.metrics:
        click.echo("\nmetrics")
        _table(["KEY", "LAST", "STEP", "MIN", "STEP", "MAX", "STEP", "MEAN", "COUNT", "BEST", "STEP"],
               [[k, _fmt(m.last), m.last_step, _fmt(m.min), m.min_step, _fmt(m.max), m.max_step, _fmt(m.mean),
                 m.count, _fmt(m.best), m.best_step] for k, m in sorted(run.metrics.items())])
    if run.tags:
        click.echo("\ntags")
        _table(["KEY", "VALUE"], [[k, v] for k, v in sorted(run.tags.items())])


@main.group()
def models() -> None:
    """Registered models: list, show, alias, promote, export, import."""


@models.command("list")
@click.option("--registry", default=None)
@click.option("--json", "as_json", is_flag=True)
def models_list(registry: str | None, as_json: bool) -> None:
    try:
        found = cairn.Client().search_registered_models(registry=registry, max_results=1000)
    except cairn.CairnError as exc:
        _fail(exc)
    if as_json:
        _emit_json([m.__dict__ for m in found])
        return
    _table(["NAME", "LATEST", "ALIASES", "DESCRIPTION"],
           [[m.name, m.latest_version, ", ".join(f"{a}->v{v}" for a, v in sorted(m.aliases.items())),
             m.description[:50]] for m in found])


def _version_json(version: cairn.ModelVersion) -> dict[str, Any]:
    return dict(version.__dict__)


@models.command("show")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True)
def models_show(spec: str, as_json: bool) -> None:
    """SPEC is NAME, NAME/VERSION or NAME@ALIAS."""
    client = cairn.Client()
    try:
        if "@" in spec or "/" in spec:
            version = client.resolve_model_uri(f"models:/{spec}")
            if as_json:
                _emit_json(_version_json(version))
                return
            _show_version(version)
            return
        model = client.get_registered_model(spec)
        versions = client.list_model_versions(spec)
    except cairn.CairnError as exc:
        _fail(exc)
    if as_json:
        _emit_json({**model.__dict__, "versions": [_version_json(v) for v in versions]})
        return
    click.echo(f"{model.name}  {model.description}")
    _table(["VERSION", "ALIASES", "FLAVOR", "RUN", "CREATED", "BY"],
           [[v.version, ", ".join(v.aliases), v.flavor, v.run_id, _when(v.created_at), v.created_by] for v in versions])


def _show_version(version: cairn.ModelVersion) -> None:
    click.echo(f"{version.name} v{version.version}  [{version.status}]  flavor {version.flavor}")
    click.echo(f"run {version.run_id}  created {_when(version.created_at)} by {version.created_by}")
    if version.source:
        click.echo(f"promoted from {version.source['model']} v{version.source['version']}  {version.note}")
    if version.aliases:
        click.echo(f"aliases: {', '.join(version.aliases)}")
    metrics = version.lineage.get("metrics", {})
    if metrics:
        _table(["METRIC", "LAST", "MIN", "MAX", "BEST"],
               [[k, m.get("last"), m.get("min"), m.get("max"), m.get("best")] for k, m in sorted(metrics.items())])
    _table(["FILE", "SIZE", "DIGEST"], [[f["path"], f["size"], f["digest"][:19]] for f in version.files])


@models.command("alias")
@click.argument("name")
@click.argument("alias")
@click.argument("version", type=int)
@click.option("--reason", default="")
def models_alias(name: str, alias: str, version: int, reason: str) -> None:
    """Point ALIAS of NAME at VERSION (the move is recorded)."""
    try:
        cairn.Client().set_alias(name, alias, version, reason)
    except cairn.CairnError as exc:
        _fail(exc)
    click.echo(f"{name}@{alias} -> v{version}")


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--to", "target", required=True, help="e.g. prod.mnist")
@click.option("--alias", "aliases", multiple=True)
@click.option("--note", default="")
def models_promote(name: str, version: int, target: str, aliases: tuple[str, ...], note: str) -> None:
    try:
        made = cairn.Client().promote(name, version, to=target, aliases=list(aliases), note=note)
    except cairn.CairnError as exc:
        _fail(exc)
    click.echo(f"{name} v{version} -> {made.name} v{made.version}")


@models.command("export")
@click.argument("uri")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def models_export(uri: str, file: Path) -> None:
    """Write URI (models:/NAME/VERSION or models:/NAME@ALIAS) as a bundle FILE."""
    try:
        cairn.Client().export_model(uri, file)
    except cairn.CairnError as exc:
        _fail(exc)
    click.echo(f"exported {uri} to {file} ({file.stat().st_size:,} bytes)")


@models.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", "target", required=True, help="model to register into, e.g. prod.mnist")
def models_import(file: Path, target: str) -> None:
    try:
        made = cairn.Client().import_model(file, target)
    except cairn.CairnError as exc:
        _fail(exc)
    click.echo(f"imported {file} as {made.name} v{made.version}")


@main.command()
@click.option("--store-uri", envvar="CAIRN_STORE_URI")
@click.option("--artifact-root", envvar="CAIRN_ARTIFACT_ROOT", help="A folder, or s3://BUCKET/PREFIX.")
@click.option("--dry-run", is_flag=True, help="Report what would be freed; change nothing.")
def gc(store_uri: str | None, artifact_root: str | None, dry_run: bool) -> None:
    """Purge deleted runs, models and versions, and free blobs nothing refers to (run on the server host)."""
    from cairn.server.db.engine import Database
    from cairn.server.services.gc import collect
    from cairn.server.settings import Settings
    from cairn.server.storage.blobs import open_blob_store

    settings = Settings(store_uri=store_uri, artifact_root=artifact_root)
    database = Database(settings.resolved_store_uri)
    database.upgrade()
    with click.progressbar(length=1, label="freeing blobs") as bar:
        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(1)
        report = collect(database, open_blob_store(settings.resolved_artifact_root), dry_run=dry_run,
                         progress=progress)
    verb = "would free" if dry_run else "freed"
    click.echo(f"{'would purge' if dry_run else 'purged'} {report.runs} runs, {report.models} models, "
               f"{report.versions} versions; {verb} {report.blobs} blobs, {report.bytes_freed:,} bytes"
               + (f"; removed {report.orphan_files} orphan files" if report.orphan_files else "")
               + (f"; removed {report.stale_uploads} unfinished uploads" if report.stale_uploads else ""))


# --- audit ----------------------------------------------------------------------------------------------

@main.command()
@click.option("--workspace", "-w", default=None, help="Default: CAIRN_WORKSPACE or 'default'.")
@click.option("--since", default="7d", show_default=True, help="e.g. 24h, 7d, an ISO date, or epoch ms.")
@click.option("--until", default=None)
@click.option("--actor", default=None)
@click.option("--action", default=None, help="e.g. alias.move, or promotion.* for a family.")
@click.option("--max-results", default=None, type=int)
@click.option("--server", "server_wide", is_flag=True, help="Server-wide events instead: sign-ins, users, tokens "
              "(admins).")
@click.option("--json", "as_json", is_flag=True)
def audit(workspace: str | None, since: str, until: str | None, actor: str | None, action: str | None,
          max_results: int | None, server_wide: bool, as_json: bool) -> None:
    """The workspace's audit log (owners): who changed what, when, from where."""
    try:
        client = cairn.Client(workspace=workspace)
        if server_wide:
            found = client.list_server_events(since=since, until=until, actor=actor, action=action,
                                              max_results=max_results or 1000)
        else:
            found = client.list_events(since=since, until=until, actor=actor, action=action, max_results=max_results)
    except cairn.CairnError as exc:
        _fail(exc)
    if as_json:
        _emit_json([e.__dict__ for e in found])
        return
    _table(["TIME", "ACTOR", "ACTION", "OBJECT", "CHANGE", "FROM"],
           [[_when(e.time), e.actor, e.action, f"{e.object_type}:{e.object_id}", _change(e.before, e.after),
             e.client_addr] for e in found])


def _change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    text = json.dumps(after if before is None else {"before": before, "after": after}, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# --- import ---------------------------------------------------------------------------------------------

@main.group("import")
def import_group() -> None:
    """Bring history over from another tracking system."""


@import_group.command("mlflow")
@click.option("--from", "source", required=True, help="An MLflow tracking URI: http(s)://..., a mlruns folder, "
              "or sqlite:///mlflow.db.")
@click.option("--experiment", "-e", "experiment_names", multiple=True, help="Only these experiments (repeatable).")
@click.option("--models", is_flag=True, help="Also registered models: versions with files, tags, aliases.")
@click.option("--workspace", "-w", default=None, help="The Cairn workspace to import into.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def import_mlflow(source: str, experiment_names: tuple[str, ...], models: bool, workspace: str | None,
                  as_json: bool) -> None:
    """Copy experiments, runs (params, tags, full metric histories, datasets, artifacts, nesting, status and
    times) and optionally registered models from MLflow. Run it again to resume or to pick up new runs:
    nothing is copied twice."""
    from cairn.importers.mlflow import MlflowImporter

    try:
        importer = MlflowImporter(source, cairn.Client(workspace=workspace))
        for experiment in importer.experiments(list(experiment_names) or None):
            target = importer.target_experiment(experiment)
            runs = importer.runs_of(experiment)
            with click.progressbar(runs, label=f"{experiment.name} ({len(runs)} runs)", file=sys.stderr,
                                   show_pos=True) as bar:
                for run in bar:
                    importer.import_run(run, target)
        if models:
            click.echo("registered models ...", err=True)
            importer.import_models()
    except Exception as exc:
        _fail(exc)
    summary = importer.summary
    if as_json:
        _emit_json(summary.__dict__)
        return
    for line in summary.lines():
        click.echo(line)


from cairn.cli_conventions import conventions, runs_check  # noqa: E402  (their own module: this one is long)

main.add_command(conventions)
runs.add_command(runs_check)
