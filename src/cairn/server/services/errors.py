"""Errors the domain raises; transports map each to an HTTP status and a stable code.

    ServiceError
    ├── InvalidInputError       400  INVALID_PARAMETER_VALUE
    ├── NotAuthenticatedError   401  UNAUTHENTICATED
    ├── PermissionDeniedError   403  PERMISSION_DENIED
    ├── NotFoundError           404  RESOURCE_DOES_NOT_EXIST
    ├── ConflictError           409  RESOURCE_ALREADY_EXISTS / INVALID_STATE
    ├── PayloadTooLargeError    413  REQUEST_TOO_LARGE
    └── TooManyAttemptsError    429  TOO_MANY_REQUESTS
"""

from __future__ import annotations


class ServiceError(Exception):
    """Each kind declares its HTTP status and stable code in its class line (see the tree above)."""

    status = 400
    code = "INVALID_PARAMETER_VALUE"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None) -> None:
        super().__init_subclass__()
        cls.status = cls.status if status is None else status
        cls.code = cls.code if code is None else code

    def __init__(self, message: str, *, field: str | None = None, position: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.position = position


class InvalidInputError(ServiceError): ...
class PermissionDeniedError(ServiceError, status=403, code="PERMISSION_DENIED"): ...
class NotFoundError(ServiceError, status=404, code="RESOURCE_DOES_NOT_EXIST"): ...
class ConflictError(ServiceError, status=409, code="RESOURCE_ALREADY_EXISTS"): ...
class InvalidStateError(ConflictError, code="INVALID_STATE"): ...
class PayloadTooLargeError(ServiceError, status=413, code="REQUEST_TOO_LARGE"): ...
class NotAuthenticatedError(ServiceError, status=401, code="UNAUTHENTICATED"): ...


class TooManyAttemptsError(ServiceError, status=429, code="TOO_MANY_REQUESTS"):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
