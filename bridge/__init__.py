"""The outside world's doors: the CLI, the durable job queue, the OSC server and the watched folder.

Input is parsed and validated here, at the door, into the engine's ``RenderRequest``. The bridge
reaches torch only through the engine's public API (``engine/__init__.py``) and never imports Qt.
"""
