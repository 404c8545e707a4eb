"""The `run` command (being built: see the open issues)."""

from ..errors import UserError


def run() -> None:
    """Not built yet."""
    raise UserError("'run' is not built yet")
