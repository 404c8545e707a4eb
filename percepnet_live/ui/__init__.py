"""What people see: the live dashboard (``monitor``) and the text formatting it shares with ``status``.

Everything here renders from snapshots published by the engine; nothing reaches into the audio path.
"""
