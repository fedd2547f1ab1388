"""The provider's only way to the server: Cairn's public REST API (/api/v1) over httpx.

Every answer that is not a success becomes an :class:`ApiError` that keeps the server's message and
the name of the field it was about, so a resource can turn it into a diagnostic on the attribute the
user wrote. The token travels only in the Authorization header and is never part of a message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

WORKSPACE_HEADER = "X-Cairn-Workspace"
TIMEOUT_SECONDS = 30.0


def q(segment: Any) -> str:
    """One path segment, escaped: a name from the configuration can never reach another route."""
    return quote(str(segment), safe="")


class ApiError(Exception):
    """The server refused a call (or could not be reached: ``status`` 0)."""

    def __init__(self, status: int, message: str, field: str | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.code = status, message, field, code


class Api:
    """A client of one server, as one credential."""

    def __init__(self, url: str, token: str | None, *, transport: httpx.BaseTransport | None = None) -> None:
        headers = {"User-Agent": "terraform-provider-cairn"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_SECONDS,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, workspace: str | None = None, json: Any = None,
             params: dict[str, Any] | None = None) -> Any:
        headers = {WORKSPACE_HEADER: workspace} if workspace else {}
        try:
            response = self._http.request(method, f"/api/v1{path}", json=json, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the Cairn server at {self.url}: {type(exc).__name__}: {exc}") from None
        if response.is_success:
            return response.json() if response.content else {}
        raise _error(response)

    def get(self, path: str, *, workspace: str | None = None, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, workspace=workspace, params=params)

    def find(self, path: str, *, workspace: str | None = None, params: dict[str, Any] | None = None) -> Any:
        """GET that answers None for an object (or workspace) that does not exist."""
        try:
            return self.get(path, workspace=workspace, params=params)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def post(self, path: str, json: Any = None, *, workspace: str | None = None) -> Any:
        return self.call("POST", path, workspace=workspace, json=json if json is not None else {})

    def patch(self, path: str, json: Any, *, workspace: str | None = None) -> Any:
        return self.call("PATCH", path, workspace=workspace, json=json)

    def put(self, path: str, json: Any, *, workspace: str | None = None) -> Any:
        return self.call("PUT", path, workspace=workspace, json=json)

    def delete(self, path: str, *, workspace: str | None = None, params: dict[str, Any] | None = None,
               missing_ok: bool = True) -> None:
        """DELETE; an object already gone is what was wanted (unless ``missing_ok`` is False)."""
        try:
            self.call("DELETE", path, workspace=workspace, params=params)
        except ApiError as exc:
            if not (missing_ok and exc.status == 404):
                raise


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ApiError(response.status_code, f"HTTP {response.status_code} from {response.request.url.path}")
    field = body.get("field")
    return ApiError(response.status_code, str(body.get("message", "")), field if isinstance(field, str) else None,
                    str(body.get("error_code", "")))
