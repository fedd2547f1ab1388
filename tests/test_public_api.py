"""The SDK's public names are the ones in ``cairn.__all__``; the client never imports the server."""

from __future__ import annotations

import subprocess
import sys

import cairn

EXPECTED = {
    "start_run", "Client", "log_metric", "log_metrics", "log_param", "log_params", "set_tag", "set_tags",
    "define_metric", "log_artifact", "log_artifacts", "log_dataset", "finish", "flush", "active_run",
    "ActiveRun", "Run", "MetricSummary", "MetricPoint", "MetricHistory", "ParamEntry", "ArtifactInfo", "ArtifactVersion",
    "Experiment", "Dataset", "RunList", "CairnError", "APIError", "TransportError", "NotFoundError",
    "InvalidRequestError", "ConflictError", "PayloadTooLargeError", "PermissionDeniedError",
    "AuthenticationError", "RateLimitedError", "ServerError", "__version__",
    "AliasMove", "LoggedModel", "ModelError", "ModelVersion", "RegisteredModel", "Registry", "SignatureMismatchError",
    "MissingDependencyError", "ModelIntegrityError", "load_model", "log_model",
    "Comment", "Event", "Member", "PromotionRequest", "Token", "User", "Workspace",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(cairn.__all__) == EXPECTED
    for name in cairn.__all__:
        assert hasattr(cairn, name), name


def test_client_package_does_not_import_the_server() -> None:
    code = "import sys, cairn.client._client, cairn.client._run; print(any(m.startswith('cairn.server') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_import_cairn_is_light() -> None:
    code = "import sys, cairn; print('fastapi' in sys.modules, 'sqlalchemy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False False"
