"""Lock-free single-producer/single-consumer ring buffer of fixed-size audio blocks.

One thread pushes, one other thread pops; neither ever waits or takes a lock. The storage is
preallocated (``capacity`` blocks of ``frames x channels`` float32 samples, plus one int64 tag per
block, the block's sequence number). The write and read counters only grow; each lives in its own
cache line of ``idx`` and is written by exactly one side, *after* the block data it publishes
(x86-64 keeps stores in order; numba compiles the whole push/pop into one native call, so the
Python interpreter never sees a half-written block).

The push/pop kernels are ``@njit(nogil=True, cache=True)`` functions on plain arrays so that the
PortAudio callbacks can call them without allocating: a call unboxes the arrays and returns an
int, it creates no numpy array. ``BlockRing`` is the convenience wrapper for non-real-time code.
"""

from __future__ import annotations

import numpy as np
from numba import njit

W = 0
"""Index of the write counter (blocks ever pushed) in ``idx``."""
R = 8
"""Index of the read counter (blocks ever popped) in ``idx``: 64 bytes away from ``W``."""
IDX_SIZE = 16


@njit(nogil=True, cache=True)
def ring_count(idx):
    """Blocks currently queued (written and not yet read)."""
    return idx[W] - idx[R]


@njit(nogil=True, cache=True)
def ring_push(buf, tags, idx, block, tag):
    """Copy ``block`` (frames x channels) into the next free slot, tagged ``tag``.

    Returns 1 on success, 0 when the ring is full (the block is dropped; the caller counts it)."""
    w = idx[W]
    cap = buf.shape[0]
    if w - idx[R] >= cap:
        return 0
    slot = w % cap
    frames = buf.shape[1]
    chans = buf.shape[2]
    for i in range(frames):
        for c in range(chans):
            buf[slot, i, c] = block[i, c]
    tags[slot] = tag
    idx[W] = w + 1
    return 1


@njit(nogil=True, cache=True)
def ring_peek_tag(tags, idx):
    """Tag of the oldest queued block, or -1 when the ring is empty."""
    r = idx[R]
    if idx[W] - r <= 0:
        return -1
    return tags[r % tags.shape[0]]


@njit(nogil=True, cache=True)
def ring_pop(buf, tags, idx, out):
    """Copy the oldest block into ``out`` (frames x channels) and free its slot.

    Returns the block's tag, or -1 when the ring is empty (``out`` is left untouched)."""
    r = idx[R]
    if idx[W] - r <= 0:
        return -1
    cap = buf.shape[0]
    slot = r % cap
    frames = buf.shape[1]
    chans = buf.shape[2]
    for i in range(frames):
        for c in range(chans):
            out[i, c] = buf[slot, i, c]
    tag = tags[slot]
    idx[R] = r + 1
    return tag


@njit(nogil=True, cache=True)
def ring_drop(idx):
    """Free the oldest block without reading it (consumer side). Returns 1, or 0 if empty."""
    r = idx[R]
    if idx[W] - r <= 0:
        return 0
    idx[R] = r + 1
    return 1


class BlockRing:
    """Preallocated SPSC ring of ``capacity`` blocks, each ``frames x channels`` float32, with int64 tags."""

    def __init__(self, capacity: int, frames: int, channels: int = 1):
        if capacity < 2:
            raise ValueError("a ring needs at least 2 blocks")
        self.buf = np.zeros((capacity, frames, channels), np.float32)
        self.tags = np.full(capacity, -1, np.int64)
        self.idx = np.zeros(IDX_SIZE, np.int64)

    @property
    def capacity(self) -> int:
        return self.buf.shape[0]

    @property
    def frames(self) -> int:
        return self.buf.shape[1]

    @property
    def channels(self) -> int:
        return self.buf.shape[2]

    def __len__(self) -> int:
        return int(ring_count(self.idx))

    def push(self, block: np.ndarray, tag: int) -> bool:
        """Producer side: queue a copy of ``block``; False when full (nothing is overwritten)."""
        return bool(ring_push(self.buf, self.tags, self.idx, block, tag))

    def pop(self, out: np.ndarray) -> int:
        """Consumer side: copy the oldest block into ``out``; its tag, or -1 when empty."""
        return int(ring_pop(self.buf, self.tags, self.idx, out))

    def peek_tag(self) -> int:
        return int(ring_peek_tag(self.tags, self.idx))

    def clear(self) -> None:
        """Consumer side: drop everything queued."""
        self.idx[R] = self.idx[W]
