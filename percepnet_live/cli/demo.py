"""The `demo` command (being built: see the open issues)."""

from ..errors import UserError


def demo() -> None:
    """Not built yet."""
    raise UserError("'demo' is not built yet")
