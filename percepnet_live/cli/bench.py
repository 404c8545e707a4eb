"""The `bench` command (being built: see the open issues)."""

from ..errors import UserError


def bench() -> None:
    """Not built yet."""
    raise UserError("'bench' is not built yet")
