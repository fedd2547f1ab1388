"""The SDK's modules, behind the public names in ``cairn``.

Importing any of them wires embedded mode: the transport gets its factory from ``cairn`` (the only place that
knows the in-process server), so the client never imports the server.
"""

from cairn import _embedded_transport
from cairn.client import _transport

_transport.set_embedded_factory(_embedded_transport)
