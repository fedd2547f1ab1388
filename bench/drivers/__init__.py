"""Workload drivers. Each runs inside the virtual environment of the client it drives (Cairn's, or a
peer's under ``bench/.peers``), so it imports only the standard library, ``_common`` and that client."""
