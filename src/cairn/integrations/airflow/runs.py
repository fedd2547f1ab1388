"""One Cairn run per DAG run: ``cairn_run`` opens or joins it from whichever task asks first.

The run is found by its run key, ``airflow:<dag_id>/<dag_run_id>``, through the SDK's run joining: tasks
that start at the same moment on different workers get the same run, and a retried task joins the run it
wrote to before (the run is RUNNING again if the failed attempt had ended it FAILED).

Who ends the run: leaving ``cairn_run`` leaves the run RUNNING, because the task does not know whether
tasks after it will write to it. The last task ends it: ``cairn_run(..., end=True)`` on leaving the block,
or ``CairnEndRunOperator`` as a final task (with ``trigger_rule="all_done"`` it also ends runs whose DAG
failed). A task that raises inside the block ends the run FAILED; its retry makes it RUNNING again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSkipException, TaskDeferred

import cairn
from cairn.integrations.airflow.hooks import CairnHook, CairnTarget

TAG = "airflow."
XCOM_RUN_ID = "cairn_run_id"
NOT_FAILURES = (AirflowSkipException, AirflowRescheduleException, TaskDeferred)


def run_key(dag_id: str, dag_run_id: str) -> str:
    return f"airflow:{dag_id}/{dag_run_id}"


def attempt_tag(task_id: str, map_index: int, try_number: int) -> str:
    """The tag that records one attempt of one task: ``airflow.attempt.<task>[.<map index>].<try>``."""
    task = task_id if map_index < 0 else f"{task_id}.{map_index}"
    return f"{TAG}attempt.{task}.{try_number}"


def context_tags(context: Mapping[str, Any]) -> dict[str, str]:
    """The tags that say which DAG run, and which task attempt last wrote to the run."""
    dag_run, ti = context["dag_run"], context["ti"]
    logical = context.get("logical_date") or getattr(dag_run, "logical_date", None)
    return {f"{TAG}dag_id": dag_run.dag_id, f"{TAG}dag_run_id": dag_run.run_id,
            f"{TAG}logical_date": logical.isoformat() if logical is not None else "",
            f"{TAG}task_id": ti.task_id, f"{TAG}try_number": str(ti.try_number)}


def join_dag_run(target: CairnTarget, experiment: str, context: Mapping[str, Any], *, name: str | None = None,
                 end_on_exit: bool = False) -> cairn.ActiveRun:
    dag_run = context["dag_run"]
    return cairn.start_run(experiment, name=name or f"{dag_run.dag_id} {dag_run.run_id}",
                           run_key=run_key(dag_run.dag_id, dag_run.run_id), nested=False,
                           tracking_uri=target.url, token=target.token, workspace=target.workspace,
                           end_on_exit=end_on_exit)


@contextmanager
def cairn_run(experiment: str, *, cairn_conn_id: str = CairnHook.default_conn_name, name: str | None = None,
              tags: Mapping[str, Any] | None = None, end: bool = False) -> Iterator[cairn.ActiveRun]:
    """Inside a task: the Cairn run of the current DAG run in ``experiment``, created by the first task
    that asks. Tags it with the DAG id, DAG run id, logical date, task id and try number, records this
    attempt (``airflow.attempt.<task>.<try>``: running, then success or failed) and pushes the run id to
    XCom (key ``cairn_run_id``). With ``end=True`` leaving the block ends the run FINISHED."""
    context = get_current_context()
    ti = context["ti"]
    attempt = attempt_tag(ti.task_id, getattr(ti, "map_index", -1), ti.try_number)
    run = join_dag_run(CairnHook(cairn_conn_id).get_target(), experiment, context, name=name, end_on_exit=end)
    run.set_tags({**context_tags(context), **{k: str(v) for k, v in (tags or {}).items()}, attempt: "running"})
    ti.xcom_push(key=XCOM_RUN_ID, value=run.id)
    try:
        yield run
    except NOT_FAILURES as exc:  # the task skips, defers or reschedules itself: nothing went wrong
        run.set_tag(attempt, type(exc).__name__)
        run.detach()
        raise
    except BaseException as exc:
        run.set_tag(attempt, f"failed: {type(exc).__name__}")
        run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    run.set_tag(attempt, "success")
    run.__exit__(None, None, None)
