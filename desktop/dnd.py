"""Drag and drop in the shape DAWs and file managers speak: file URLs in ``text/uri-list``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QMimeData, QUrl


def mime_for_files(paths: Iterable[str]) -> QMimeData:
    """Mime data a DAW track, a file manager or a browser accepts as "these files"."""
    mime = QMimeData()
    urls = [QUrl.fromLocalFile(str(Path(p).resolve())) for p in paths]
    mime.setUrls(urls)
    # Some DAWs on Linux read the plain text of a drag when the uri-list is not understood.
    mime.setText("\n".join(u.toLocalFile() for u in urls))
    return mime


def local_files(mime: QMimeData) -> list[str]:
    """The local files a drag carries (file-manager drags, a DAW's clip export); remote URLs are left out."""
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
