"""Keep numba's on-disk cache honest for kernels that call code in other files.

numba keys a cached function on its own source file only (its index stores that file's mtime and
size): if ``pipeline.py``'s frame kernel inlines ``pitch_step`` from ``dsp/pitch.py`` and pitch.py
changes, numba would happily load the stale machine code. ``bind_sources`` folds a hash of every
source file the kernel depends on into the stamp numba checks, so editing any of them recompiles
the kernel once and re-caches it. Uses numba's cache internals (``_cache._cache_file._source_stamp``,
stable since numba 0.49); if they move, the kernels still work, just with numba's default rule.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable


def sources_fingerprint(paths: Iterable[Path]) -> str:
    """SHA-1 over the contents of ``paths`` (missing files count as empty)."""
    h = hashlib.sha1()
    for p in sorted(Path(p) for p in paths):
        h.update(str(p.name).encode())
        try:
            h.update(p.read_bytes())
        except OSError:
            pass
    return h.hexdigest()


def bind_sources(dispatchers: Iterable[object], paths: Iterable[Path]) -> str:
    """Make each cached numba dispatcher's cache entry depend on the contents of ``paths`` too.
    Returns the fingerprint."""
    fingerprint = sources_fingerprint(paths)
    for d in dispatchers:
        try:
            cache_file = d._cache._cache_file  # type: ignore[attr-defined]
            stamp = cache_file._source_stamp
            if not (isinstance(stamp, tuple) and len(stamp) == 2 and stamp[0] == "deps"):
                cache_file._source_stamp = ("deps", (stamp, fingerprint))
        except AttributeError:
            pass
    return fingerprint
