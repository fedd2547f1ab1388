"""``cairn conventions set/show`` and ``cairn runs check``: kept apart from cli.py, which is long already."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

import cairn
from cairn.client._conventions import Compliance, ConventionSettings

WORKSPACE = click.option("--workspace", "-w", default=None, help="Default: CAIRN_WORKSPACE or 'default'.")
EXPERIMENT = click.option("--experiment", "-e", default=None, help="An experiment's own conventions (name or id).")


def _experiment(value: str | None) -> str | int | None:
    return int(value) if value is not None and value.isdigit() else value


def _rules(values: tuple[str, ...]) -> dict[str, Any] | None:
    """``--rule one_model=off``, ``--rule required_tags.tags=task,variant``, ``--rule code_reference=on``."""
    rules: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: expected RULE=on|off or RULE.PARAMETER=VALUE", param_hint="--rule")
        rule, dot, parameter = name.partition(".")
        if not dot:
            rules[rule] = value.lower() in ("on", "true", "yes", "1")
            continue
        parsed: Any = value.lower() in ("true", "yes", "1") if value.lower() in ("true", "false", "yes", "no",
                                                                                   "1", "0") else value.split(",")
        current = rules.get(rule)
        rules[rule] = {**(current if isinstance(current, dict) else {}), parameter: parsed}
    return rules or None


def _show(settings: ConventionSettings, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(settings.__dict__, indent=2))
        return
    click.echo(f"mode {settings.mode}  (set on the {settings.scope}"
               + (f" by {settings.updated_by})" if settings.updated_by else ")"))
    for rule, params in settings.rules.items():
        click.echo(f"  {rule}" + "".join(f"  {k}={v}" for k, v in params.items()))


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group("conventions")
def conventions() -> None:
    """The conventions a workspace (or one experiment) requires of its runs and model versions."""


@conventions.command("set")
@WORKSPACE
@EXPERIMENT
@click.option("--mode", required=True, help="off, warn or enforce")
@click.option("--preset", default=None, help="recommended or minimal")
@click.option("--rule", "rules", multiple=True, help="RULE=on|off or RULE.PARAMETER=VALUE (repeatable)")
@click.option("--json", "as_json", is_flag=True)
def conventions_set(workspace: str | None, experiment: str | None, mode: str, preset: str | None,
                    rules: tuple[str, ...], as_json: bool) -> None:
    try:
        client = cairn.Client(workspace=workspace)
        _show(client.set_conventions(mode, preset=preset, rules=_rules(rules), experiment=_experiment(experiment)),
              as_json)
    except cairn.CairnError as exc:
        _fail(exc)


@conventions.command("show")
@WORKSPACE
@EXPERIMENT
@click.option("--json", "as_json", is_flag=True)
def conventions_show(workspace: str | None, experiment: str | None, as_json: bool) -> None:
    try:
        _show(cairn.Client(workspace=workspace).get_conventions(_experiment(experiment)), as_json)
    except cairn.CairnError as exc:
        _fail(exc)


@click.command("check")
@click.argument("run_id")
@WORKSPACE
@click.option("--json", "as_json", is_flag=True)
def runs_check(run_id: str, workspace: str | None, as_json: bool) -> None:
    """Which conventions the run meets, which it misses and why. Exits 2 when it misses any."""
    try:
        report: Compliance = cairn.Client(workspace=workspace).check_run(run_id)
    except cairn.CairnError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({**report.__dict__, "rules": [r.__dict__ for r in report.rules]}, indent=2))
    else:
        click.echo(str(report))
    if report.compliant is False:
        sys.exit(2)
