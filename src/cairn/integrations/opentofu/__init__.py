"""terraform-provider-cairn: Cairn's workspaces, teams, members, roles, grants, registries, models,
aliases, service accounts and tokens as code, for OpenTofu and Terraform (plugin protocol 6).

Install with ``pip install 'cairn-ml[opentofu]'``; the console script ``terraform-provider-cairn`` is the
plugin. It talks to the server only through the public REST API. See docs/integrations/opentofu.md.
"""

from __future__ import annotations

from cairn.integrations.opentofu.provider import CairnProvider, main

__all__ = ["CairnProvider", "main"]
