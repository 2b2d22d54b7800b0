"""Who acts through the API: the authenticated client, and the registered reviewer it acts for.

A reviewer client (a UM platform) acts for a person. It names that person with `on_behalf_of`, the
username of a registered workbench account, which must be active and hold the role the client acts
in. The audit event then keeps both: the principal (`client:<id>`, who authenticated) and the actor
(the reviewer's username). Free text never becomes an actor, and the engine's name is nobody's.
"""

from __future__ import annotations

from sqlalchemy import select

from medpolicy.service.auth import Client
from medpolicy.service.errors import ApiError
from medpolicy.store import Store
from medpolicy.store.lifecycle import ENGINE_NAME

__all__ = ["client_principal", "resolve_reviewer"]


def client_principal(client: Client) -> str:
    return f"client:{client.client_id}"


def resolve_reviewer(store: Store, username: str | None, role: str, *, field: str = "on_behalf_of") -> str:
    """The username of the registered, active reviewer with `role` named by `username`; else ApiError."""
    from medpolicy.web.users import users_table  # the workbench owns the accounts table

    name = (username or "").strip()
    if not name:
        raise ApiError(
            422,
            "reviewer_required",
            "a reviewer action must name the registered reviewer it is taken for (on_behalf_of)",
            field=field,
        )
    if name.lower() == ENGINE_NAME:
        raise ApiError(
            422, "reserved_actor", f"{ENGINE_NAME!r} is the engine's own name", field=field, value=name
        )
    with store.engine.connect() as conn:
        row = conn.execute(
            select(users_table.c.role, users_table.c.disabled).where(users_table.c.username == name)
        ).first()
    if row is None or row.disabled:
        raise ApiError(
            422,
            "unknown_reviewer",
            "no active workbench account has this username; a reviewer must be a registered user",
            field=field,
            value=name,
        )
    if row.role != role:
        raise ApiError(
            403,
            "reviewer_role_not_granted",
            f"the reviewer {name!r} is not a {role}",
            field=field,
            value=name,
        )
    return name
