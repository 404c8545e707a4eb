"""percepnet-live: real-time PercepNet noise suppression for Linux desktops.

Data flow (and folder layout): ``dsp`` (STFT, bands, pitch, comb filter, postfilter)
-> ``model`` (the network and its weights) -> ``pipeline`` (one 10 ms frame in, one out)
-> ``engine`` (ring buffers, streams, worker, virtual microphone) -> ``ui`` and ``cli``.
``train`` and ``evaluation`` sit beside the runtime and are never imported by it.
"""

__version__ = "0.1.0"
