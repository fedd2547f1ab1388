"""Cairn's Airflow provider (``pip install 'cairn-ml[airflow]'``, Airflow 3).

    from cairn.integrations.airflow import CairnHook, cairn_run, CairnPromoteModelOperator, ...

The names are imported on first use: Airflow's providers manager imports ``provider`` (the entry point)
while Airflow itself is loading, and that must not pull in the operators.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cairn.integrations.airflow.hooks import CairnHook
    from cairn.integrations.airflow.operators import (
        CairnBranchOnMetricOperator,
        CairnEndRunOperator,
        CairnPromoteModelOperator,
        CairnRegisterModelOperator,
        CairnSetAliasOperator,
    )
    from cairn.integrations.airflow.runs import cairn_run
    from cairn.integrations.airflow.sensors import CairnModelVersionSensor, CairnPromotionApprovalSensor
    from cairn.integrations.airflow.triggers import CairnModelVersionTrigger, CairnPromotionRequestTrigger

_WHERE = {
    "CairnHook": "hooks",
    "cairn_run": "runs",
    "CairnBranchOnMetricOperator": "operators",
    "CairnEndRunOperator": "operators",
    "CairnPromoteModelOperator": "operators",
    "CairnRegisterModelOperator": "operators",
    "CairnSetAliasOperator": "operators",
    "CairnModelVersionSensor": "sensors",
    "CairnPromotionApprovalSensor": "sensors",
    "CairnModelVersionTrigger": "triggers",
    "CairnPromotionRequestTrigger": "triggers",
}

__all__ = [
    "CairnBranchOnMetricOperator",
    "CairnEndRunOperator",
    "CairnHook",
    "CairnModelVersionSensor",
    "CairnModelVersionTrigger",
    "CairnPromoteModelOperator",
    "CairnPromotionApprovalSensor",
    "CairnPromotionRequestTrigger",
    "CairnRegisterModelOperator",
    "CairnSetAliasOperator",
    "cairn_run",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
