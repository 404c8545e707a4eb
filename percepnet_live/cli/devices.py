"""The `devices` command (being built: see the open issues)."""

from ..errors import UserError


def devices() -> None:
    """Not built yet."""
    raise UserError("'devices' is not built yet")
