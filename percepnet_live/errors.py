"""The one exception type that reaches the user as a single line.

Anything the user can fix (a missing file, an unknown device, a bad config key) raises
``UserError`` with a message that says what is wrong and what would be accepted; the CLI prints
it in one line and exits non-zero. Other exceptions are bugs.
"""


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2
