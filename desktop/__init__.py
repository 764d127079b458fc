"""The PySide6 desktop app: windows, widgets, playback and settings.

It talks to the engine only through the bridge's job queue and never imports torch.
"""
