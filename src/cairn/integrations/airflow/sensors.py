"""Sensors on Cairn's registry: a new model version (or an alias that moved), and a decided promotion request.

Without ``deferrable`` they poke (``mode="poke"``, holding a worker slot) or give the slot back between
pokes (``mode="reschedule"``). With ``deferrable=True`` they check once and then wait in the triggerer
through an async trigger; ``timeout`` is then the deferral's timeout. Either way a timeout fails the task,
or skips it with ``soft_fail=True``, as Airflow's own sensors do, and so does a rejected request (it fails
without retrying: a retry would not change a reviewer's decision).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

import cairn
from cairn.integrations.airflow import _checks
from cairn.integrations.airflow.hooks import CairnHook
from cairn.integrations.airflow.triggers import CairnModelVersionTrigger, CairnPromotionRequestTrigger


class _CairnSensor(BaseSensorOperator):
    def __init__(self, *, cairn_conn_id: str = CairnHook.default_conn_name, deferrable: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cairn_conn_id = cairn_conn_id
        self.deferrable = deferrable

    def client(self) -> cairn.Client:
        return CairnHook(self.cairn_conn_id).get_conn()

    def check(self, context: Any) -> _checks.Check:
        raise NotImplementedError

    def trigger(self) -> Any:
        raise NotImplementedError

    def poke(self, context: Any) -> PokeReturnValue:
        check = self.check(context)
        if check.failure is not None:
            raise AirflowFailException(check.failure)
        return PokeReturnValue(is_done=check.done, xcom_value=check.payload if check.done else None)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        try:
            answer = self.poke(context)  # already there: no need to defer
        except AirflowFailException as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail is set to True: {exc}") from exc
            raise
        if answer.is_done:
            return answer.xcom_value
        self.defer(trigger=self.trigger(), method_name="execute_complete", timeout=timedelta(seconds=self.timeout))
        return None

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Back from the triggerer with its event."""
        event = event or {}
        if event.get("status") == "done":
            return event.get("payload")
        if event.get("status") == "failed":
            raise AirflowFailException(event.get("message"))
        raise AirflowException(f"cairn: {event.get('message') or event!r}")


class CairnPromotionApprovalSensor(_CairnSensor):
    """Waits until promotion request ``request_id`` is approved; returns the request id, the promoted model
    and the version the approval made. Rejected or cancelled: the task fails with the reviewer's comment.

    ``request_id`` takes the id, or the promote operator's whole answer
    (``"{{ ti.xcom_pull('promote') }}"``); when that answer says the version was promoted directly (the target
    registry needs no approval), there is nothing to wait for and the sensor succeeds at once.
    """

    template_fields: Sequence[str] = ("request_id",)

    def __init__(self, *, request_id: Any, poll_interval: float | None = None, **kwargs: Any) -> None:
        if poll_interval is not None:
            kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.request_id = request_id

    def check(self, context: Any) -> _checks.Check:
        direct = _checks.direct_promotion(self.request_id)
        if direct is not None:
            return _checks.Check(done=True, payload={"request_id": None, "status": "promoted",
                                                     "model": direct.get("model"), "version": direct.get("version")})
        return _checks.check_promotion(self.client(), _checks.request_id_of(self.request_id))

    def trigger(self) -> CairnPromotionRequestTrigger:
        return CairnPromotionRequestTrigger(request_id=_checks.request_id_of(self.request_id),
                                            cairn_conn_id=self.cairn_conn_id, poll_interval=self.poke_interval)


class CairnModelVersionSensor(_CairnSensor):
    """Waits for a version of ``model`` newer than ``after_version`` (any version if None) or, with
    ``alias``, for the alias to point at a version other than ``after_version`` (to exist at all if None).
    Returns ``{"model", "version", "alias"}``."""

    template_fields: Sequence[str] = ("model", "alias", "after_version")

    def __init__(self, *, model: str, alias: str | None = None, after_version: Any = None,
                 poll_interval: float | None = None, **kwargs: Any) -> None:
        if poll_interval is not None:
            kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.model, self.alias, self.after_version = model, alias, after_version

    def check(self, context: Any) -> _checks.Check:
        after = _checks.optional_version(self.after_version, "after_version")
        return _checks.check_model(self.client(), self.model, self.alias or None, after)

    def trigger(self) -> CairnModelVersionTrigger:
        return CairnModelVersionTrigger(model=self.model, alias=self.alias or None,
                                        after_version=_checks.optional_version(self.after_version, "after_version"),
                                        cairn_conn_id=self.cairn_conn_id, poll_interval=self.poke_interval)
