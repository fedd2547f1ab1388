"""What Airflow learns about this provider without importing it: the ``apache_airflow_provider`` entry point
returns this dictionary (Airflow's provider-info schema), so the connection form, the hook and the classes
show up in the UI and in ``airflow providers list``. Kept free of Airflow imports on purpose: the providers
manager calls it while Airflow itself is still loading."""

from __future__ import annotations

from typing import Any

import cairn

PACKAGE = "cairn.integrations.airflow"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "cairn-ml",  # the distribution's name (Airflow checks they match)
        "name": "Cairn",
        "description": "Cairn experiment tracking and model registry: one run per DAG run, registry operators, "
                       "a metric gate and deferrable sensors on model versions and promotion approvals.",
        "versions": [cairn.__version__],
        "integrations": [{"integration-name": "Cairn", "tags": ["software"]}],
        "hooks": [{"integration-name": "Cairn", "python-modules": [f"{PACKAGE}.hooks"]}],
        "operators": [{"integration-name": "Cairn", "python-modules": [f"{PACKAGE}.operators"]}],
        "sensors": [{"integration-name": "Cairn", "python-modules": [f"{PACKAGE}.sensors"]}],
        "triggers": [{"integration-name": "Cairn", "python-modules": [f"{PACKAGE}.triggers"]}],
        "connection-types": [{
            "connection-type": "cairn",
            "hook-class-name": f"{PACKAGE}.hooks.CairnHook",
            "hook-name": "Cairn",
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "login", "port", "extra"],
                "relabeling": {"host": "Server URL", "password": "API token"},
                "placeholders": {"host": "https://cairn.example.com", "password": "an API token (cairn token create)",
                                 "workspace": "default"},
            },
            "conn-fields": {
                "workspace": {"label": "Workspace", "description": "The Cairn workspace the DAG works in",
                              "schema": {"type": ["string", "null"], "default": "default"}},
            },
        }],
    }
