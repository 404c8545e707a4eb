"""The `status` command (being built: see the open issues)."""

from ..errors import UserError


def status() -> None:
    """Not built yet."""
    raise UserError("'status' is not built yet")
