"""The `train` command (being built: see the open issues)."""

from ..errors import UserError


def train() -> None:
    """Not built yet."""
    raise UserError("'train' is not built yet")
