"""The `monitor` command (being built: see the open issues)."""

from ..errors import UserError


def monitor() -> None:
    """Not built yet."""
    raise UserError("'monitor' is not built yet")
