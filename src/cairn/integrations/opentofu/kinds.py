"""The value types of the provider's attributes, in the plugin protocol's terms."""

from __future__ import annotations

from tf import types as tft

STRING, NUMBER, BOOL = tft.String(), tft.Number(), tft.Bool()
STRING_MAP, STRING_LIST = tft.Map(tft.String()), tft.List(tft.String())
