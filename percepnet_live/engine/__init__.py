"""The real-time engine: sound-server virtual microphone, PortAudio streams, ring buffers, worker, daemon.

Data flow: input callback -> ``ring.BlockRing`` (10 ms blocks) -> ``worker.Worker`` (resample,
``pipeline.FrameProcessor``) -> ``ring.BlockRing`` -> output callback -> the virtual microphone made by
``soundserver``. ``daemon.Daemon`` owns all of it, recovers from device loss and publishes snapshots.
"""
