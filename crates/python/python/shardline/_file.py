"""File objects over the native reader and writer."""

from __future__ import annotations

import io
import os
from typing import Any

from . import _native


class ShardlineFile(io.RawIOBase):
    """A Shardline file open for reading: an :class:`io.RawIOBase`, seekable.

    Reads a snapshot of the file's committed data taken at open. Each read
    fetches and decrypts only the segments holding the bytes asked for, with
    the GIL released. :meth:`readinto` fills the caller's buffer (bytearray,
    memoryview, numpy array: any writable C-contiguous buffer) directly, with
    no intermediate ``bytes``. Wrap it in :class:`io.BufferedReader` (or
    open with ``buffering=``) for many small reads.
    """

    def __init__(self, reader: _native.Reader, name: str) -> None:
        super().__init__()
        self._reader = reader
        self._pos = 0
        self.name = name
        self.mode = "rb"

    @property
    def size(self) -> int:
        """The file's size when it was opened."""
        return self._reader.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current position; returns the bytes read
        (0 at the end of the file)."""
        self._check()
        n = self._reader.readinto_at(self._pos, buffer)
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (the rest of the file if negative or None)."""
        self._check()
        if size is None or size < 0:
            return self.readall()
        data = self._reader.pread(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        self._check()
        return self.read(max(0, self.size - self._pos))

    def pread(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``, leaving the position alone."""
        self._check()
        return self._reader.pread(offset, length)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check()
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        elif whence == os.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise OSError(22, "negative seek position")
        self._pos = pos
        return pos

    def tell(self) -> int:
        self._check()
        return self._pos

    def __repr__(self) -> str:
        return f"<shardline.ShardlineFile name={self.name!r} size={self.size}>"


class ShardlineWriter(io.RawIOBase):
    """A new Shardline file being written: bytes stream out in chunks as they
    fill; :meth:`close` commits them and moves the file into place
    atomically (readers see the old file or the whole new one). Leaving a
    ``with`` block on an exception discards the file instead."""

    def __init__(self, writer: _native.Writer, name: str) -> None:
        super().__init__()
        self._writer = writer
        self._written = 0
        self.name = name
        self.mode = "wb"

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        n = self._writer.write(bytes(data))
        self._written += n
        return n

    def tell(self) -> int:
        return self._written

    def close(self) -> None:
        if not self.closed:
            try:
                self._writer.close()
            finally:
                super().close()

    def abort(self) -> None:
        """Discard what was written; the file is not created."""
        if not self.closed:
            self._writer.abort()
            super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()
