"""Sign-in, sessions, tokens and their scopes, throttling, Host checks and account bad input, in
authentication mode on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from cairn._embedded import ASGIBridge
from cairn.server.db.models import TokenRow
from cairn.server.services import accounts
from tests.conftest import AuthWorld

API = "/api/v1"
PASSWORD = "a long passphrase 42"


@pytest.fixture
def alice(world: AuthWorld) -> str:
    """A person with a password, owner of workspace 'team'; returns her write token."""
    token = world.user("alice", password=PASSWORD)
    world.workspace("team", {"alice": "owner"})
    return token


def login(client: httpx.Client, username: str = "alice", password: str = PASSWORD) -> httpx.Response:
    return client.post(f"{API}/auth/login", json={"username": username, "password": password})


def test_sign_in_sets_a_safe_cookie_and_needs_csrf_for_changes(world: AuthWorld, alice: str) -> None:
    browser = world.client(None, "team", https=True)
    answer = login(browser)
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    csrf = answer.json()["csrf_token"]
    assert browser.get(f"{API}/experiments").status_code == 200
    refused = browser.post(f"{API}/experiments", json={"name": "e"})
    assert refused.status_code == 403 and refused.json()["field"] == "X-CSRF-Token"
    assert browser.post(f"{API}/experiments", json={"name": "e"}, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    assert browser.post(f"{API}/experiments", json={"name": "e"}, headers={"X-CSRF-Token": csrf}).status_code == 201
    assert browser.post(f"{API}/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert browser.get(f"{API}/experiments").status_code == 401
    plain = world.client(None, "team")
    assert "secure" not in login(plain).headers["set-cookie"].lower()  # plain HTTP: not Secure


class CountingHasher:
    """The real argon2 hasher, recording the hashes that logins verify against."""

    def __init__(self, real: Any) -> None:
        self.real, self.verified = real, []

    def hash(self, password: str) -> str:
        return str(self.real.hash(password))

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return bool(self.real.verify(password_hash, password))


def test_unknown_user_and_wrong_password_look_and_cost_the_same(world: AuthWorld, alice: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    client = world.client(None)
    hasher = CountingHasher(accounts._hasher)
    monkeypatch.setattr(accounts, "_hasher", hasher)
    answers, work = {}, {}
    for case, name, password in [("wrong", "alice", "not the password"), ("unknown", "nobody-here", "whatever1234")]:
        hasher.verified.clear()
        response = login(client, name, password)
        answers[case] = (response.status_code, response.json())
        work[case] = [h.split("$")[1:4] for h in hasher.verified]  # algorithm, version, cost parameters
    assert answers["wrong"] == answers["unknown"]
    assert answers["wrong"][0] == 401
    assert len(work["wrong"]) == 1 and work["wrong"][0][0] == "argon2id"
    assert work["unknown"] == work["wrong"]  # one argon2 check of the same cost, whether or not the user exists


def test_repeated_failures_are_slowed_then_refused_with_429(world: AuthWorld, alice: str) -> None:
    client = world.client(None)
    statuses = [login(client, "alice", f"wrong guess {i}").status_code for i in range(5)]
    assert statuses == [401] * 5
    blocked = login(client)  # even the right password, while blocked
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert client.get(f"{API}/experiments", headers={"Authorization": f"Basic {basic}"}).status_code == 429
    owner = world.client(alice, "team")
    admin = world.client(world.user("root", admin=True))
    failures = list(admin.get(f"{API}/admin/events", params={"action": "login.*"}).json()["events"])
    assert [e["action"] for e in failures] == ["login.failure"] * 5
    assert owner.get(f"{API}/experiments").status_code == 200  # tokens are not blocked


def test_http_basic_with_password_or_token(world: AuthWorld, alice: str) -> None:
    with_password = world.client(None, "team", auth=("alice", PASSWORD))
    assert with_password.get(f"{API}/experiments").status_code == 200
    assert with_password.get(f"{API}/experiments").status_code == 200  # the second is served from the cache
    with_token = world.client(None, "team", auth=("alice", alice))
    assert with_token.post(f"{API}/runs", json={"experiment_name": "e"}).json()["user"] == "alice"
    assert world.client(None, "team", auth=("alice", "wrong password!")).get(f"{API}/experiments").status_code == 401
    assert world.client(None, "team", auth=("bob", alice)).get(f"{API}/experiments").status_code == 401


def test_token_scopes_revocation_expiry_and_demotion(world: AuthWorld, alice: str) -> None:
    world.user("bob")
    owner = world.client(alice, "team")
    assert owner.post(f"{API}/workspaces/team/members", json={"user": "bob", "role": "editor"}).status_code == 201
    bob_read, bob_write = world.token("bob", "read"), world.token("bob", "write")
    reader, writer = world.client(bob_read, "team"), world.client(bob_write, "team")
    assert reader.get(f"{API}/experiments").status_code == 200
    assert reader.post(f"{API}/experiments", json={"name": "x"}).status_code == 403
    assert writer.post(f"{API}/experiments", json={"name": "x"}).status_code == 201
    # demotion applies on the next request
    assert owner.patch(f"{API}/workspaces/team/members/users/bob", json={"role": "viewer"}).status_code == 200
    assert writer.post(f"{API}/experiments", json={"name": "y"}).status_code == 403
    assert owner.delete(f"{API}/workspaces/team/members/users/bob").status_code == 200
    assert writer.get(f"{API}/experiments").status_code == 404  # no longer a member: the workspace is gone
    # revocation applies on the next request
    mine = owner.post(f"{API}/tokens", json={"name": "ci", "scope": "write", "expires_in": 3600}).json()
    ci = world.client(mine["token"], "team")
    assert ci.get(f"{API}/experiments").status_code == 200
    listed = {t["id"]: t for t in owner.get(f"{API}/tokens").json()["tokens"]}
    assert "token" not in listed[mine["id"]] and listed[mine["id"]]["last_used_at"] is not None
    assert owner.delete(f"{API}/tokens/{mine['id']}").status_code == 200
    assert ci.get(f"{API}/experiments").status_code == 401
    # expiry
    other = owner.post(f"{API}/tokens", json={"name": "short", "scope": "read", "expires_in": 60}).json()
    with world.app.state.db.session(write=True) as session:
        session.execute(update(TokenRow).where(TokenRow.id == other["id"]).values(expires_at=1))
    assert world.client(other["token"], "team").get(f"{API}/experiments").status_code == 401
    # a tampered secret fails
    assert world.client(alice[:-4] + "AAAA", "team").get(f"{API}/experiments").status_code == 401


def test_a_credential_cannot_mint_a_stronger_one(world: AuthWorld, alice: str) -> None:
    reader = world.client(world.token("alice", "read"), "team")
    assert reader.post(f"{API}/tokens", json={"name": "x", "scope": "read"}).status_code == 403
    writer = world.client(alice, "team")
    refused = writer.post(f"{API}/tokens", json={"name": "x", "scope": "admin"})
    assert refused.status_code == 403 and refused.json()["field"] == "scope"
    assert writer.post(f"{API}/tokens", json={"name": "x", "scope": "write", "user": "root"}).status_code == 403


def test_disabled_user_loses_access_at_once(world: AuthWorld, alice: str) -> None:
    admin = world.client(world.user("root", admin=True))
    owner = world.client(alice, "team")
    assert owner.get(f"{API}/experiments").status_code == 200
    assert admin.patch(f"{API}/users/alice", json={"disabled": True}).status_code == 200
    assert owner.get(f"{API}/experiments").status_code == 401
    assert login(world.client(None)).status_code == 401


def test_host_header_not_allowed_is_refused(world: AuthWorld, alice: str) -> None:
    client = world.client(alice, "team")
    assert client.get(f"{API}/experiments", headers={"Host": "attacker.example"}).status_code == 400
    assert client.get(f"{API}/experiments", headers={"Host": "localhost:5000"}).status_code == 200
    cross_site = world.client(None).post(f"{API}/auth/login", headers={"Origin": "https://attacker.example"},
                                         json={"username": "alice", "password": PASSWORD})
    assert cross_site.status_code == 403


@pytest.mark.parametrize(("body", "status", "field", "words"), [
    ({"name": "carol", "password": "short"}, 400, "password", "too short"),
    ({"name": "carol", "password": "carol"}, 400, "password", "too short"),
    ({"name": "carolcarol", "password": "CarolCarol"}, 400, "password", "same as the user name"),
    ({"name": "carol", "password": "aaaaaaaaaaaa"}, 400, "password", "too simple"),
    ({"name": "bad name!", "password": PASSWORD}, 400, "name", "user name"),
    ({"name": "carol"}, 400, "password", "required"),
    ({"name": "alice", "password": PASSWORD}, 409, "name", "already exists"),
])
def test_bad_users_are_refused_with_the_rule(world: AuthWorld, alice: str, body: dict[str, str], status: int,
                                             field: str, words: str) -> None:
    admin = world.client(world.user("root", admin=True))
    answer = admin.post(f"{API}/users", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["field"] == field and words in answer.json()["message"]


def test_membership_bad_input(world: AuthWorld, alice: str) -> None:
    world.user("bob")
    owner = world.client(alice, "team")
    members = f"{API}/workspaces/team/members"
    assert owner.post(members, json={"user": "nobody", "role": "viewer"}).status_code == 404
    unknown_role = owner.post(members, json={"user": "bob", "role": "superuser"})
    assert unknown_role.status_code == 400 and unknown_role.json()["field"] == "role"
    assert owner.post(members, json={"user": "bob", "role": "viewer"}).status_code == 201
    twice = owner.post(members, json={"user": "bob", "role": "editor"})
    assert twice.status_code == 409 and "already a member" in twice.json()["message"]
    last = owner.delete(f"{members}/users/alice")
    assert last.status_code == 409 and "last owner" in last.json()["message"]
    assert owner.patch(f"{members}/users/alice", json={"role": "viewer"}).status_code == 409
    assert owner.post(f"{API}/tokens", json={"name": "x", "scope": "superpowers"}).json()["field"] == "scope"
    admin = world.client(world.user("root", admin=True))
    assert admin.post(f"{API}/workspaces", json={"name": "team"}).status_code == 409
    assert admin.post(f"{API}/workspaces", json={"name": "Bad Name"}).status_code == 400
    assert world.client(alice, "nowhere").get(f"{API}/experiments").status_code == 404


def test_local_mode_needs_no_login(api: httpx.Client) -> None:
    assert api.post(f"{API}/runs", json={"experiment_name": "e"}).status_code == 201
    assert api.get(f"{API}/auth/me").json()["auth"] is False
    assert api.post(f"{API}/tokens", json={"name": "x"}).status_code == 400
    assert api.post(f"{API}/auth/login", json={"username": "a", "password": "b"}).status_code == 400


def test_a_team_role_applies_to_its_members(world: AuthWorld, alice: str) -> None:
    admin = world.client(world.user("root", admin=True))
    dana = world.client(world.user("dana"), "team")
    assert dana.get(f"{API}/experiments").status_code == 404
    assert admin.post(f"{API}/teams", json={"name": "vision"}).status_code == 201
    assert admin.post(f"{API}/teams/vision/members", json={"user": "dana"}).status_code == 201
    owner = world.client(alice, "team")
    assert owner.post(f"{API}/workspaces/team/members", json={"team": "vision", "role": "editor"}).status_code == 201
    assert dana.post(f"{API}/runs", json={"experiment_name": "e"}).status_code == 201
    members = owner.get(f"{API}/workspaces/team/members").json()["members"]
    assert [(m["kind"], m["role"]) for m in members] == [("user", "owner"), ("team", "editor")]
    assert [t["members"] for t in admin.get(f"{API}/teams").json()["teams"]] == [["dana"]]
    assert admin.delete(f"{API}/teams/vision/members/dana").status_code == 200
    assert dana.get(f"{API}/experiments").status_code == 404


def test_cross_site_changes_are_refused_whatever_the_credential(world: AuthWorld, alice: str) -> None:
    basic = world.client(None, "team", auth=("alice", PASSWORD))
    for headers in ({"Origin": "https://attacker.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        refused = basic.post(f"{API}/runs", json={"experiment_name": "e"}, headers=headers)
        assert refused.status_code == 403, headers
    assert basic.get(f"{API}/experiments", headers={"Origin": "https://attacker.example"}).status_code == 200
    same_site = basic.post(f"{API}/runs", json={"experiment_name": "e"}, headers={"Origin": "http://localhost:5000",
                                                                               "Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 201


def test_local_server_refuses_cross_site_changes(api: httpx.Client) -> None:
    assert api.post(f"{API}/runs", json={"experiment_name": "e"},
                    headers={"Origin": "https://attacker.example"}).status_code == 403


def test_password_change_is_throttled_and_needs_a_password_sign_in(world: AuthWorld, alice: str) -> None:
    with_token = world.client(alice, "team")
    refused = with_token.post(f"{API}/auth/password", json={"old_password": PASSWORD, "new_password": "x" * 12})
    assert refused.status_code == 403 and "not with a token" in refused.json()["message"]
    basic = world.client(None, "team", auth=("alice", PASSWORD))
    weak = basic.post(f"{API}/auth/password", json={"old_password": PASSWORD, "new_password": "alice"})
    assert weak.status_code == 400 and weak.json()["field"] == "new_password"
    guesses = [basic.post(f"{API}/auth/password", json={"old_password": f"guess {i}", "new_password": "new pass 123"})
               .status_code for i in range(6)]
    assert guesses[:5] == [403] * 5 and guesses[5] == 429


def test_a_token_cannot_outlive_the_token_that_made_it(world: AuthWorld, alice: str) -> None:
    owner = world.client(alice, "team")
    short = owner.post(f"{API}/tokens", json={"name": "short", "scope": "write", "expires_in": 3600}).json()
    child = world.client(short["token"], "team").post(f"{API}/tokens", json={"name": "child", "expires_in": None})
    assert child.status_code == 201
    assert child.json()["expires_at"] == short["expires_at"]


def test_session_state_is_public_and_never_an_error(world: AuthWorld, alice: str) -> None:
    anonymous = world.client(None)
    assert anonymous.get(f"{API}/auth/session").json() == {"auth": True, "signed_in": False}
    assert world.client(alice).get(f"{API}/auth/session").json()["user"] == {"name": "alice", "admin": False}
    browser = world.client(None)
    csrf = login(browser).json()["csrf_token"]
    assert browser.get(f"{API}/auth/session").json()["csrf_token"] == csrf


# sign-in throttling per account and address ---------------------------------------------------------------

def _client_from(world: AuthWorld, addr: str) -> httpx.Client:
    """A client whose requests come from ``addr`` (the in-process transport lets the test say so)."""
    client = world.client(None, "team")
    client._transport = ASGIBridge(world.app, client=(addr, 40000))
    return client


def test_a_lock_from_one_address_does_not_lock_the_user_out_elsewhere(world: AuthWorld, alice: str) -> None:
    attacker, user = _client_from(world, "203.0.113.9"), _client_from(world, "198.51.100.7")
    assert [login(attacker, "alice", f"guess {i}").status_code for i in range(5)] == [401] * 5
    assert login(attacker).status_code == 429  # the attacker's address is locked, even with the password
    assert login(user).status_code == 200  # alice, from an address with no recent failures, gets in
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    assert user.get(f"{API}/experiments", headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_an_admin_lifts_a_lock(world: AuthWorld, alice: str) -> None:
    locked = _client_from(world, "203.0.113.10")
    for i in range(5):
        login(locked, "alice", f"guess {i}")
    assert login(locked).status_code == 429
    admin = world.client(world.user("root", admin=True))
    assert world.client(alice).post(f"{API}/users/alice/unlock").status_code == 403  # admins only
    answer = admin.post(f"{API}/users/alice/unlock")
    assert answer.status_code == 200 and answer.json()["cleared"] >= 2
    assert login(locked).status_code == 200
    assert admin.post(f"{API}/users/nobody-at-all/unlock").status_code == 404
    events = admin.get(f"{API}/admin/events", params={"action": "user.unlock"}).json()["events"]
    assert [(e["actor"], e["object_id"]) for e in events] == [("root", "alice")]


def test_one_address_guessing_many_accounts_is_locked(world: AuthWorld, alice: str) -> None:
    world.app.state.settings.login_policy = world.app.state.settings.login_policy.__class__(
        delay_after=100, block_after=5, addr_block_after=8, max_delay=0.0)
    sprayer = _client_from(world, "203.0.113.11")
    statuses = [login(sprayer, f"user{i}", "guess-guess").status_code for i in range(8)]
    assert statuses == [401] * 8
    assert login(sprayer).status_code == 429  # the address, not alice, is locked
    assert login(_client_from(world, "198.51.100.8")).status_code == 200
