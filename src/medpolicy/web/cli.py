"""Functions behind the `medpolicy user add` command and the demo's accounts.

add_user("sqlite:///data/medpolicy.db", "nora", "a long password", "nurse")
seed_demo_users(store)          # prints the demo accounts; `make run` calls it
"""

from __future__ import annotations

import sys
from typing import TextIO

from medpolicy.store import Store
from medpolicy.web.users import User, UserError, UserStore, WebRole

__all__ = ["DEMO_USERS", "add_user", "seed_demo_users"]

# Demo accounts for `make run` (a local demo on loopback only; change them anywhere else).
DEMO_USERS: tuple[tuple[str, str, WebRole, str], ...] = (
    ("nurse", "nurse-demo-password", WebRole.NURSE, "Nora Nurse, RN"),  # (username, password, role, name)
    ("physician", "physician-demo-password", WebRole.PHYSICIAN, "Dr. Paul Physician"),
    ("admin", "admin-demo-password", WebRole.ADMIN, "Ada Admin"),
)


def add_user(
    store_or_url: Store | str,
    username: str,
    password: str,
    role: WebRole | str,
    *,
    display_name: str | None = None,
) -> User:
    """Create a workbench account (role: nurse, physician or admin). Raises `UserError` (`.code`:
    user_exists, weak_password, invalid_role, invalid_username). A URL opens (and migrates) the store."""
    if isinstance(store_or_url, Store):
        return UserStore(store_or_url.engine, clock=store_or_url.clock).add_user(
            username, password, role, display_name=display_name
        )
    store = Store.open(store_or_url)
    try:
        return UserStore(store.engine, clock=store.clock).add_user(
            username, password, role, display_name=display_name
        )
    finally:
        store.close()


def seed_demo_users(store: Store, *, out: TextIO | None = None) -> list[str]:
    """Create the demo accounts that do not exist yet and print every demo sign-in. Returns the
    usernames created."""
    users = UserStore(store.engine, clock=store.clock)
    created = []
    for username, password, role, name in DEMO_USERS:
        try:
            users.add_user(username, password, role, display_name=name)
            created.append(username)
        except UserError as exc:
            if exc.code != "user_exists":
                raise
    stream = out or sys.stdout
    print("reviewer workbench demo accounts (sign in at /):", file=stream)
    for username, password, role, _name in DEMO_USERS:
        print(f"  {role.label:<20} username {username:<10} password {password}", file=stream)
    stream.flush()
    return created
