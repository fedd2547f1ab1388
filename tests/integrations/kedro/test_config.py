"""cairn.yml: defaults, environment overrides, and clear errors for what the plugin does not know."""

from __future__ import annotations

import pytest

from cairn.integrations.kedro.config import CairnSettings, ConfigError
from cairn.integrations.kedro.tracking import MAX_KEY, flatten, metric_key, param_text


def test_defaults_and_environment_overrides() -> None:
    assert CairnSettings.from_dict(None, env={}) == CairnSettings()
    settings = CairnSettings.from_dict({"run": {"key": "from-file", "end": "never"}},
                                       env={"CAIRN_RUN_KEY": "from-env", "CAIRN_END_RUN": "1"})
    assert (settings.run_key, settings.end) == ("from-env", "always")
    tracked = CairnSettings.from_dict({"server": {"tracking_uri": "http://127.0.0.1:5000", "workspace": "ml"}}, env={})
    assert tracked.tracking_env() == {"CAIRN_TRACKING_URI": "http://127.0.0.1:5000", "CAIRN_WORKSPACE": "ml"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"sever": {}}, r"unknown section\(s\) \['sever'\]"),
    ({"run": {"nmae": "x"}}, r"unknown key\(s\) \['run.nmae'\]"),
    ({"run": {"end": "sometimes"}}, "run.end must be one of"),
    ({"params": {"include": "model.*"}}, "params.include must be a list"),
    ({"run": "nightly"}, "run must be a mapping"),
])
def test_mistakes_are_named(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CairnSettings.from_dict(raw, env={})


def test_params_and_keys() -> None:
    assert flatten({"model": {"lr": 0.1, "layers": [1, 2]}, "empty": {}}) == {"model.lr": 0.1, "model.layers": [1, 2],
                                                                              "empty": {}}
    assert [param_text(v) for v in (None, True, 3, [1, "a"], {"b": 1})] == ["None", "True", "3", '[1, "a"]',
                                                                           '{"b": 1}']
    assert metric_key("kedro.node", "train([a;b]) -> [c]", "seconds") == "kedro.node.train([a;b]) -> [c].seconds"
    long = metric_key("kedro.node", "n" * 400, "seconds")
    assert len(long) <= MAX_KEY and long != metric_key("kedro.node", "n" * 399, "seconds")


def test_loading_the_plugin_does_not_import_the_sdk() -> None:
    """Kedro loads the hooks and commands at every ``kedro`` command: the SDK waits until a pipeline runs."""
    import subprocess
    import sys

    code = ("import sys, cairn.integrations.kedro.hooks, cairn.integrations.kedro.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('cairn.client', 'httpx', 'orjson'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
