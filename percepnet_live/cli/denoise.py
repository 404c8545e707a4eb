"""The `denoise` command (being built: see the open issues)."""

from ..errors import UserError


def denoise() -> None:
    """Not built yet."""
    raise UserError("'denoise' is not built yet")
