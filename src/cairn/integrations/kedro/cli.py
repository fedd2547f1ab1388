"""``kedro cairn ...``: project commands, registered through the ``kedro.project_commands`` entry point.

Kedro imports this module for every ``kedro`` command run inside a project, so it imports click only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.group(name="Cairn")
def commands() -> None:
    """Cairn's Kedro commands."""


@commands.group(name="cairn")
def cairn_group() -> None:
    """Track this project's pipeline runs with Cairn."""


@cairn_group.command(name="init")
@click.option("--env", "-e", default="base", show_default=True, help="The configuration environment to write into.")
@click.option("--force", is_flag=True, help="Overwrite an existing cairn.yml.")
@click.pass_obj
def init(metadata: Any, env: str, *, force: bool) -> None:  # click passes flags by keyword
    """Write conf/<env>/cairn.yml with every setting and its default, commented."""
    from kedro.framework.project import settings

    from cairn.integrations.kedro.config import TEMPLATE

    project = Path(getattr(metadata, "project_path", None) or Path.cwd())
    target = project / settings.CONF_SOURCE / env / "cairn.yml"
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(TEMPLATE, encoding="utf-8")
    click.secho(f"wrote {target.relative_to(project)}", fg="green")
