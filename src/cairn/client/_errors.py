"""Exceptions raised by the Cairn SDK.

    CairnError
    ├── TransportError              the server could not be reached or did not answer in time
    ├── ModelError                  saving, loading or calling a model went wrong
    │   ├── SignatureMismatchError  the data does not fit the model's signature (also a ValueError)
    │   ├── MissingDependencyError  a package the model needs is not installed (names what to pip install)
    │   └── ModelIntegrityError     a model folder does not match its manifest
    └── APIError                    the server answered with an error (status, code, message, field)
        ├── InvalidRequestError     400: the request was wrong (names the field)
        ├── AuthenticationError     401
        ├── PermissionDeniedError   403
        ├── NotFoundError           404
        ├── ConflictError           409: exists already, or the object's state forbids it
        ├── PayloadTooLargeError    413
        ├── RateLimitedError        429
        └── ServerError             5xx
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CairnError(Exception):
    """Base of every error the SDK raises."""


class TransportError(CairnError):
    pass


class ModelError(CairnError):
    """Base of the errors about saving, loading and calling models."""


class SignatureMismatchError(ModelError, ValueError):
    """The data given to a model does not fit its signature; names the column (or "input") and the expected type."""

    def __init__(self, message: str, *, column: str | None = None, expected: str | None = None) -> None:
        super().__init__(message)
        self.column = column
        self.expected = expected


class MissingDependencyError(ModelError):
    """A package that a flavor (or an input example) needs is not installed; names what to pip install."""

    def __init__(self, message: str, *, package: str | None = None) -> None:
        super().__init__(message)
        self.package = package

    @classmethod
    def for_package(cls, package: str, needed_by: str, install: str | None = None) -> MissingDependencyError:
        return cls(f"{needed_by} needs {package}: {install or f'pip install {package}'}", package=package)


class ModelIntegrityError(ModelError):
    """A model folder does not match its manifest: a file is missing, changed, or the manifest is unreadable."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path

    @classmethod
    def at(cls, path: Path, problem: str) -> ModelIntegrityError:
        return cls(f"{path}: {problem}", path=path)


class APIError(CairnError):
    status = 0

    def __init__(self, status: int, message: str, code: str = "", field: str | None = None,
                 position: int | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" if code else f"{status}: {message}")
        self.status, self.message, self.code = status, message, code
        self.field, self.position = field, position  # where in the request the server found the problem


class InvalidRequestError(APIError):
    pass


class AuthenticationError(APIError):
    pass


class PermissionDeniedError(APIError):
    pass


class NotFoundError(APIError):
    pass


class ConflictError(APIError):
    pass


class PayloadTooLargeError(APIError):
    pass


class RateLimitedError(APIError):
    pass


class ServerError(APIError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 413: PayloadTooLargeError, 422: InvalidRequestError, 429: RateLimitedError,
}


def error_for(status: int, body: Any) -> APIError:
    info = body if isinstance(body, dict) else {}
    message = str(info.get("message") or info.get("detail") or body or "no message")
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    return cls(status, message, str(info.get("error_code", "")), info.get("field"), info.get("position"))
