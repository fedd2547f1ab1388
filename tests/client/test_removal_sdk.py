"""The SDK's calls that undo a set-up (delete workspaces, teams, users, registries; reset dev/prod;
delete an experiment tag), in embedded mode, where the local user may do everything."""

from __future__ import annotations

from pathlib import Path

import pytest

import cairn


def test_the_sdk_removes_what_it_set_up(sdk_env: Path) -> None:
    client = cairn.Client()
    client.create_workspace("vision")
    client.create_user("vision-ci", service=True)
    client.create_team("vision-ml")
    client.update_team("vision-ml", "the vision team")
    client.add_team_member("vision-ml", "vision-ci")
    client.add_member("vision", team="vision-ml", role="editor")

    vision = cairn.Client(workspace="vision")
    served = vision.update_registry("prod", protected=False, description="served")
    assert (served.name, served.description, served.protected, served.default) == ("prod", "served", False, True)
    reset = vision.reset_registry("prod")
    assert (reset.description, reset.protected) == ("", True)
    vision.create_registry("staging")
    with pytest.raises(cairn.ConflictError, match="reset it"):
        vision.delete_registry("dev")
    vision.delete_registry("staging")
    assert [r.name for r in vision.list_registries()] == ["dev", "prod"]
    experiment = vision.create_experiment("exp", tags={"a": "1", "b": "2"})
    vision.delete_experiment_tag(experiment.id, "a")
    assert vision.get_experiment(experiment.id).tags == {"b": "2"}
    with pytest.raises(cairn.ConflictError, match="1 active experiments"):
        client.delete_workspace("vision")
    vision.delete_experiment(experiment.id)

    client.delete_team("vision-ml")
    client.delete_user("vision-ci")
    client.delete_workspace("vision")
    assert [w.name for w in client.list_workspaces()] == ["default"]
    assert [u.name for u in client.list_users()] == []
    with pytest.raises(cairn.NotFoundError):
        client.delete_team("vision-ml")
