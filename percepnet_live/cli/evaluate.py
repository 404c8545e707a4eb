"""The `evaluate` command (being built: see the open issues)."""

from ..errors import UserError


def evaluate() -> None:
    """Not built yet."""
    raise UserError("'evaluate' is not built yet")
