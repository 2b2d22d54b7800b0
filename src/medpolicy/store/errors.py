"""Errors of the store: each has a stable `code`, a lower-case `message` and an HTTP `status`."""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors: a stable `code`, a lower-case `message`, an HTTP `status`."""

    code = "store_error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class NotFoundError(StoreError):
    status = 404


class IdempotencyConflictError(StoreError):
    code = "idempotency_key_reused"
    status = 409


class ConcurrentUpdateError(StoreError):
    code = "concurrent_update"
    status = 409


class InvalidActionError(StoreError):
    code = "invalid_action"
    status = 422


class TokenReplayedError(StoreError):
    code = "token_replayed"
    status = 401
