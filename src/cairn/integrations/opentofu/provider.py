"""The provider itself: its configuration, its resources and data sources, and the console script
``terraform-provider-cairn`` that OpenTofu or Terraform starts (plugin protocol 6, served by ``tf``)."""

from __future__ import annotations

import os
import sys
from typing import Any

from tf import schema as tfs
from tf.utils import Diagnostics

from cairn.integrations.opentofu import access, data, registry
from cairn.integrations.opentofu.api import Api
from cairn.integrations.opentofu.base import attr, known
from cairn.integrations.opentofu.kinds import STRING

FULL_NAME = "registry.terraform.io/cairn-ml/cairn"
DEFAULT_URL = "http://127.0.0.1:5000"
DEFAULT_WORKSPACE = "default"
ENV = {"url": "CAIRN_TRACKING_URI", "token": "CAIRN_TOKEN", "workspace": "CAIRN_WORKSPACE"}


class CairnProvider:
    """Holds the configured server connection that every resource uses."""

    def __init__(self, *, transport: Any = None) -> None:
        self.url, self.token, self.workspace = DEFAULT_URL, "", DEFAULT_WORKSPACE
        self._api: Api | None = None
        self._transport = transport  # tests: an in-process transport to the app

    def get_model_prefix(self) -> str:
        return "cairn_"

    def full_name(self) -> str:
        return FULL_NAME

    def get_provider_schema(self, diags: Diagnostics) -> tfs.Schema:
        return tfs.Schema(attributes=[
            attr("url", STRING, f"The server's URL; else `{ENV['url']}`, else {DEFAULT_URL}.", optional=True),
            attr("token", STRING, f"An API token; else `{ENV['token']}`.", optional=True, sensitive=True),
            attr("workspace", STRING, f"The workspace of resources that name none; else `{ENV['workspace']}`, "
                                      f"else `{DEFAULT_WORKSPACE}`.", optional=True),
        ])

    def validate_config(self, diags: Diagnostics, config: dict[str, Any]) -> None:
        url = config.get("url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            diags.add_error("Invalid url", f"url must start with http:// or https:// (got {url[:100]!r})",
                            path=["url"])

    def configure_provider(self, diags: Diagnostics, config: dict[str, Any]) -> None:
        def pick(name: str, default: str) -> str:
            value = config.get(name)
            return str(value) if known(value) and value != "" else os.environ.get(ENV[name]) or default
        self.url, self.token, self.workspace = pick("url", DEFAULT_URL), pick("token", ""), \
            pick("workspace", DEFAULT_WORKSPACE)
        if not self.url.startswith(("http://", "https://")):
            diags.add_error("Invalid url", f"{ENV['url']} must be an http(s) URL for the provider", path=["url"])
        self._api = None

    def api(self) -> Api:
        if self._api is None:
            self._api = Api(self.url, self.token or None, transport=self._transport)
        return self._api

    def get_resources(self) -> list[type[Any]]:
        return [*access.RESOURCES, *registry.RESOURCES]

    def get_data_sources(self) -> list[type[Any]]:
        return list(data.DATA_SOURCES)

    def get_functions(self) -> list[type[Any]]:
        return []

    def new_resource(self, klass: type[Any]) -> Any:
        return klass(self)

    def new_data_source(self, klass: type[Any]) -> Any:
        return klass(self)

    def new_function(self, klass: type[Any]) -> Any:
        return klass(self)


def main() -> None:
    """The plugin's entry point. Started by OpenTofu/Terraform, it prints the go-plugin handshake and
    serves gRPC on a Unix socket; run by hand it says how to make OpenTofu find it."""
    if sys.stdin.isatty() and os.environ.get("TF_PLUGIN_MAGIC_COOKIE") is None and "--dev" not in sys.argv:
        print("terraform-provider-cairn is started by OpenTofu or Terraform, not by hand: see "
              "docs/integrations/opentofu.md (dev_overrides or a filesystem mirror)", file=sys.stderr)
        raise SystemExit(1)
    from tf.runner import run_provider

    run_provider(CairnProvider(), sys.argv)
