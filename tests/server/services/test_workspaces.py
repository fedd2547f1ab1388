"""The permission model against a reference: random sequences of member, team, role and grant changes,
after each of which every user's effective permission on every action and resource equals what a small
model written here says. Grants go to direct members only, die with the membership they were given
under, and re-adding a member restores none."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from cairn.server.authz import PERMISSIONS, RANK, ROLES, at_least, unrestricted
from cairn.server.db.engine import Database
from cairn.server.services import accounts, experiments, workspaces
from cairn.server.services.accounts import Identity
from cairn.server.services.context import Context
from cairn.server.services.errors import ServiceError

USERS = ("u1", "u2", "u3")
TEAMS = ("t1", "t2")
RESOURCES = (("experiment", "e1"), ("experiment", "e2"), ("registry", "dev"))
GRANT_ROLES = ("viewer", "editor", "maintainer")
_runs = itertools.count()


@dataclass
class Model:
    """What the rules say, in the plainest terms."""

    members: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> role
    teams: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in TEAMS})
    grants: dict[tuple[str, str, str, str], str] = field(default_factory=dict)  # (kind, name, type, res) -> role

    def principals_of(self, user: str) -> list[tuple[str, str]]:
        return [("user", user)] + [("team", t) for t, users in self.teams.items() if user in users]

    def role_on(self, user: str, resource: tuple[str, str] | None) -> str | None:
        held = [p for p in self.principals_of(user) if p in self.members]
        if not held:
            return None  # not a member: the workspace does not exist for them
        roles = [self.members[p] for p in held]
        if resource is not None:
            roles += [r for (k, n, t, res), r in self.grants.items() if (k, n) in held and (t, res) == resource]
        return max(roles, key=RANK.__getitem__)


def _actions() -> list[tuple[str, str, str | None]]:
    return [(name, p.role, p.resource) for name, p in PERMISSIONS.items() if p.role is not None]


class PermissionMachine(RuleBasedStateMachine):
    db: Database

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.tag = f"m{next(_runs)}"  # users, teams and the workspace are new for every example
        self.ids: dict[tuple[str, str], int] = {}
        with self.db.session(write=True) as session:
            for user in (*USERS, "boss"):
                accounts.create_user(session, "setup", self.name(user), None, service=True)
            for team in TEAMS:
                accounts.create_team(session, "setup", self.name(team))
            row = workspaces.create_workspace(session, "setup", self.tag)
            self.ctx = Context(row.id, self.tag, "setup", "", unrestricted("setup"))
            workspaces.add_member(session, self.ctx, "owner", user=self.name("boss"))
            for kind, name in RESOURCES:
                if kind == "experiment":
                    self.ids[(kind, name)] = experiments.get_or_create_experiment(session, self.ctx, name).id
                else:
                    self.ids[(kind, name)] = workspaces._resource(session, self.ctx, kind, name)[0]
            self.user_ids = {u: accounts.get_user(session, self.name(u)).id for u in USERS}

    def name(self, short: str) -> str:
        return f"{self.tag}-{short}"

    def _try(self, fn: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            with self.db.session(write=True) as session:
                fn(session, *args, **kwargs)
        except ServiceError:
            return False
        return True

    def _who(self, kind: str, name: str) -> dict[str, str]:
        return {kind: self.name(name)}

    @rule(kind=st.sampled_from(("user", "team")), data=st.data(), role=st.sampled_from(ROLES))
    def add_member(self, kind: str, data: st.DataObject, role: str) -> None:
        name = data.draw(st.sampled_from(USERS if kind == "user" else TEAMS))
        done = self._try(workspaces.add_member, self.ctx, role, **self._who(kind, name))
        assert done == ((kind, name) not in self.model.members)
        if done:
            self.model.members[(kind, name)] = role

    @rule(kind=st.sampled_from(("user", "team")), data=st.data(), role=st.sampled_from(ROLES))
    def set_role(self, kind: str, data: st.DataObject, role: str) -> None:
        name = data.draw(st.sampled_from(USERS if kind == "user" else TEAMS))
        done = self._try(workspaces.set_member_role, self.ctx, role, **self._who(kind, name))
        assert done == ((kind, name) in self.model.members)
        if done:
            self.model.members[(kind, name)] = role

    @rule(kind=st.sampled_from(("user", "team")), data=st.data())
    def remove_member(self, kind: str, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(USERS if kind == "user" else TEAMS))
        done = self._try(workspaces.remove_member, self.ctx, **self._who(kind, name))
        assert done == ((kind, name) in self.model.members)
        if done:
            del self.model.members[(kind, name)]
            self.model.grants = {k: r for k, r in self.model.grants.items() if k[:2] != (kind, name)}

    @rule(team=st.sampled_from(TEAMS), user=st.sampled_from(USERS))
    def join_team(self, team: str, user: str) -> None:
        done = self._try(accounts.add_team_member, "setup", self.name(team), self.name(user))
        assert done == (user not in self.model.teams[team])
        self.model.teams[team].add(user)

    @rule(team=st.sampled_from(TEAMS), user=st.sampled_from(USERS))
    def leave_team(self, team: str, user: str) -> None:
        done = self._try(accounts.remove_team_member, "setup", self.name(team), self.name(user))
        assert done == (user in self.model.teams[team])
        self.model.teams[team].discard(user)

    @rule(kind=st.sampled_from(("user", "team")), data=st.data(), resource=st.sampled_from(RESOURCES),
          role=st.sampled_from(GRANT_ROLES))
    def grant(self, kind: str, data: st.DataObject, resource: tuple[str, str], role: str) -> None:
        name = data.draw(st.sampled_from(USERS if kind == "user" else TEAMS))
        done = self._try(workspaces.grant, self.ctx, resource[0], resource[1], role, **self._who(kind, name))
        key = (kind, name, *resource)
        assert done == ((kind, name) in self.model.members and key not in self.model.grants), key
        if done:
            self.model.grants[key] = role

    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        with self.db.session(write=False) as session:
            listed = workspaces.list_grants(session, self.ctx)
        if not listed:
            return
        chosen = data.draw(st.sampled_from(listed))
        assert self._try(workspaces.revoke_grant, self.ctx, chosen["id"])
        kind = "user" if "user" in chosen else "team"
        short = chosen[kind].removeprefix(self.tag + "-")
        del self.model.grants[(kind, short, chosen["resource_type"], chosen["resource"])]

    @invariant()
    def permissions_match(self) -> None:
        with self.db.session(write=False) as session:
            for user in USERS:
                identity = Identity(self.user_ids[user], self.name(user), False, "write", "token")
                try:
                    guard = workspaces.guard_for(session, identity, self.tag)[1]
                except ServiceError:
                    guard = None
                for action, needed, resource_type in _actions():
                    for resource in RESOURCES:
                        on = resource if resource_type == resource[0] else None
                        expected = at_least(self.model.role_on(user, on), needed)
                        if guard is None:
                            actual = False
                        elif on is None:
                            actual = guard.has(needed)
                        else:
                            actual = at_least(guard.role_on(resource[0], self.ids[resource]), needed)
                        assert actual == expected, (user, action, resource, self.model)


def test_effective_permissions_follow_the_reference_model(store_uri: str) -> None:
    db = Database(store_uri)
    try:
        machine = type("Machine", (PermissionMachine,), {"db": db})
        run_state_machine_as_test(machine, settings=settings(
            max_examples=15, stateful_step_count=20, deadline=None, derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        db.dispose()


def test_a_member_through_a_team_cannot_be_granted(store_uri: str) -> None:
    """The old rule let a grant be given to a user who belonged only through a team."""
    db = Database(store_uri)
    try:
        machine = type("Machine", (PermissionMachine,), {"db": db})()
        with db.session(write=True) as session:
            workspaces.add_member(session, machine.ctx, "viewer", team=machine.name("t1"))
            accounts.add_team_member(session, "setup", machine.name("t1"), machine.name("u1"))
        with pytest.raises(ServiceError, match="direct member"), db.session(write=True) as session:
            workspaces.grant(session, machine.ctx, "experiment", "e1", "editor", user=machine.name("u1"))
    finally:
        db.dispose()
