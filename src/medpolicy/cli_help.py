"""`--help` without type placeholders: Typer 0.2x prints `<bool>`, `<str>` and `<path>` beside every
option. Here a flag shows nothing and a value shows its name in capitals (`--host HOST`), as Unix
help does; an explicit `metavar` still wins. Installed by `medpolicy.cli` (`install()`)."""

from __future__ import annotations

from typing import Any

__all__ = ["install"]


def _plain(self: Any, ctx: Any) -> str | None:
    if getattr(self, "metavar", None) is not None:
        return str(self.metavar)
    if getattr(self, "is_flag", False) or getattr(self, "is_bool_flag", False):
        return None
    name = str(getattr(self, "name", "") or "value").upper()
    return name + ("..." if getattr(self, "nargs", 1) != 1 else "")


def install() -> None:
    """Replace the type column of Typer's rich help (a no-op on a Typer without it)."""
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:  # pragma: no cover
        return
    for cls in (TyperOption, TyperArgument):
        if hasattr(cls, "display_type_rich"):
            cls.display_type_rich = _plain  # type: ignore[method-assign,assignment,unused-ignore]
