"""The triggers on their own, as the triggerer runs them: async code, rebuilt from what they serialize."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import cairn
from cairn.integrations.airflow.provider import get_provider_info
from cairn.integrations.airflow.triggers import CairnModelVersionTrigger, CairnPromotionRequestTrigger
from tests.integrations.airflow.conftest import World

pytestmark = pytest.mark.slow


class Scorer:
    def predict(self, rows: list[Any]) -> list[float]:
        return [0.5 for _ in rows]


def registered(world: World, model: str) -> cairn.ModelVersion:
    with cairn.start_run(f"triggers-{uuid.uuid4().hex[:6]}", tracking_uri=world.url, token=world.ci_token,
                         workspace="ml") as run:
        version = run.log_model(Scorer(), registered_model_name=f"dev.{model}")
    assert isinstance(version, cairn.ModelVersion)
    return version


def rebuilt(trigger: Any) -> Any:
    """What the triggerer does: import the class path and call it with the serialized kwargs."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    return cls(**kwargs)


async def first_event(trigger: Any, act: Any = None, after: float = 0.5) -> dict[str, Any]:
    """The trigger's event; ``act`` (blocking, e.g. a reviewer's decision) runs in a thread while it polls.
    A failure of ``act`` fails the test at once, and a trigger silent for a minute fails it too."""
    async def later() -> None:
        if act is not None:
            await asyncio.sleep(after)
            await asyncio.to_thread(act)

    async def watch() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    event, _ = await asyncio.wait_for(asyncio.gather(watch(), later()), timeout=60)
    return event


def test_the_promotion_trigger_waits_for_a_decision(world: World) -> None:
    model = f"trig_{uuid.uuid4().hex[:6]}"
    version = registered(world, model)
    request = world.client().request_promotion(f"dev.{model}", version.version, f"prod.{model}", comment="please")
    trigger = rebuilt(CairnPromotionRequestTrigger(request_id=request.id, poll_interval=0.1))
    assert trigger.serialize()[1] == {"cairn_conn_id": "cairn_default", "poll_interval": 0.1,
                                      "request_id": request.id}

    event = asyncio.run(first_event(trigger, lambda: world.bob.approve(request.id, comment="fine")))
    assert event == {"status": "done", "payload": {"request_id": request.id, "status": "approved",
                                                   "model": f"prod.{model}", "version": 1, "decided_by": "bob",
                                                   "comment": "fine"}}

    again = registered(world, model)
    second = world.client().request_promotion(f"dev.{model}", again.version, f"prod.{model}")
    event = asyncio.run(first_event(rebuilt(CairnPromotionRequestTrigger(request_id=second.id, poll_interval=0.1)),
                                    lambda: world.bob.reject(second.id, comment="not on a Friday")))
    assert event["status"] == "failed"
    assert event["message"].endswith("was rejected by bob: not on a Friday")

    missing = asyncio.run(first_event(CairnPromotionRequestTrigger(request_id=999_999, poll_interval=0.1)))
    assert missing["status"] == "error" and "999999 does not exist" in missing["message"]


def test_the_model_version_trigger_waits_for_a_new_version_or_an_alias_move(world: World) -> None:
    model = f"trig_{uuid.uuid4().hex[:6]}"
    trigger = rebuilt(CairnModelVersionTrigger(model=f"dev.{model}", poll_interval=0.1))
    event = asyncio.run(first_event(trigger, lambda: registered(world, model)))  # the model does not exist yet
    assert event == {"status": "done", "payload": {"model": f"dev.{model}", "version": 1, "alias": None}}

    moved = rebuilt(CairnModelVersionTrigger(model=f"dev.{model}", alias="champion", after_version=1,
                                             poll_interval=0.1))

    def move() -> None:
        world.bob.set_alias(f"dev.{model}", "champion", 1)  # to the version it waits to leave: no event
        registered(world, model)
        world.bob.set_alias(f"dev.{model}", "champion", 2)

    event = asyncio.run(first_event(moved, move))
    assert event == {"status": "done", "payload": {"model": f"dev.{model}", "version": 2, "alias": "champion"}}


def test_the_provider_declares_its_connection_form_and_classes() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    info = get_provider_info()
    manager = ProvidersManager()  # what the API server builds the connection form from
    assert manager.providers["cairn-ml"].data["name"] == "Cairn"  # found through the entry point
    hook = ProvidersManagerTaskRuntime().hooks["cairn"]  # what a worker resolves conn_type "cairn" to
    assert hook is not None and hook.hook_class_name == "cairn.integrations.airflow.hooks.CairnHook"
    behaviour = manager.field_behaviours["cairn"]
    assert behaviour["relabeling"] == {"host": "Server URL", "password": "API token"}
    assert "extra__cairn__workspace" in manager.connection_form_widgets
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for module in info[kind][0]["python-modules"]:
            __import__(module)
