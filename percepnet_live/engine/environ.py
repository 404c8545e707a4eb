"""Temporary process-environment changes, undone on exit from the block.

PulseAudio clients (the ALSA ``pulse`` PCM behind PortAudio, pactl, parec) take their server,
source and sink from environment variables read when a stream opens; this sets them for exactly
that moment.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Mapping


@contextlib.contextmanager
def temporary_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then restore each variable (or unset it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
