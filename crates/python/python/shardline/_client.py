"""The :class:`Client`: a connection to one Shardline cluster."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from typing import Any, Union

from . import _native
from ._file import ShardlineFile, ShardlineWriter

PathLike = Union[str, "os.PathLike[str]"]
#: A prefetch item: a whole file by path, or a ``(path, offset, length)`` range.
Item = Union[PathLike, tuple[PathLike, int, int]]

#: Default prefetch window: items in flight, and bytes in flight.
DEFAULT_WINDOW = 16
DEFAULT_WINDOW_BYTES = 64 << 20


def _cluster_file(cluster_file: PathLike | None) -> str:
    if cluster_file is None:
        cluster_file = os.environ.get("SHARDLINE_CLUSTER")
        if not cluster_file:
            raise ValueError("no cluster file given and SHARDLINE_CLUSTER is not set")
    return os.fspath(cluster_file)


def connect(
    cluster_file: PathLike | None = None,
    *,
    read_parallelism: int | None = None,
    threads: int | None = None,
) -> Client:
    """Connect to a cluster.

    :param cluster_file: its ``cluster.toml`` (``shardline up`` writes one in
        its data folder); default: ``$SHARDLINE_CLUSTER``.
    :param read_parallelism: chunks a whole-file read keeps in flight (6).
    :param threads: I/O threads of this process's connection (2 to 8, by
        the CPUs available).
    :raises FileNotFoundError: no such cluster file.
    :raises OSError: the cluster cannot be reached or the key not loaded.
    """
    path = _cluster_file(cluster_file)
    native = _native.connect(path, read_parallelism=read_parallelism, threads=threads)
    return Client(native, path, read_parallelism=read_parallelism, threads=threads)


class Client:
    """A connection to a Shardline cluster; make one with :func:`connect`.

    Paths are absolute inside the cluster (``/datasets/x.tar``). Safe to use
    from several threads. After ``fork`` the child makes its own connection
    on first use; pickling a client pickles its cluster file (unpickling
    connects again), so it can be handed to spawned workers too.
    """

    def __init__(self, native: _native.Client, cluster_file: str, **options: Any) -> None:
        self._native = native
        self._options = options
        self.cluster_file = cluster_file

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reconnect, (self.cluster_file, self._options))

    def __repr__(self) -> str:
        return f"shardline.Client({self.cluster_file!r})"

    # -- files ---------------------------------------------------------------

    def open(self, path: PathLike, mode: str = "rb", buffering: int = 0) -> Any:
        """Open a file.

        ``"rb"``: a :class:`ShardlineFile` (an :class:`io.RawIOBase`,
        seekable, over a snapshot of the file's committed data), or with
        ``buffering > 0`` an :class:`io.BufferedReader` of that buffer size
        over it. ``"wb"``: a :class:`ShardlineWriter`; the file appears,
        whole and atomically, when it is closed.
        """
        path = os.fspath(path)
        if mode == "rb":
            raw = ShardlineFile(self._native.open_reader(path), path)
            return io.BufferedReader(raw, buffering) if buffering > 0 else raw
        if mode == "wb":
            return ShardlineWriter(self._native.open_writer(path), path)
        raise ValueError(f"unsupported mode {mode!r}: shardline files open as 'rb' or 'wb'")

    def read_range(self, path: PathLike, offset: int, length: int) -> bytes:
        """``length`` bytes of ``path`` from ``offset`` (fewer at the end of
        the file). Only the segments holding them are fetched and decrypted."""
        return self._native.read_range(os.fspath(path), offset, length)

    def read_bytes(self, path: PathLike) -> bytes:
        """The whole file."""
        return self._native.read_bytes(os.fspath(path))

    def write_bytes(self, path: PathLike, data: bytes) -> int:
        """Write ``data`` as the file ``path`` (atomic); returns its size."""
        return self._native.write_bytes(os.fspath(path), bytes(data))

    def put(self, local: PathLike, path: PathLike) -> int:
        """Upload the local file ``local`` as ``path`` (streamed, atomic)."""
        return self._native.put(os.fspath(local), os.fspath(path))

    def get(self, path: PathLike, local: PathLike) -> int:
        """Download ``path`` to the local file ``local`` (streamed; the local
        file appears when complete)."""
        return self._native.get(os.fspath(path), os.fspath(local))

    # -- namespace ------------------------------------------------------------

    def stat(self, path: PathLike) -> dict[str, Any]:
        """Attributes: ``size``, ``type`` (``"file"``, ``"directory"``,
        ``"symlink"``...), ``ino``, ``mode``, ``nlink``, ``mtime_ns``, ``ec``,
        ``chunk_size``, ``encrypted``."""
        return self._native.stat(os.fspath(path))

    def exists(self, path: PathLike) -> bool:
        try:
            self.stat(path)
        except FileNotFoundError:
            return False
        return True

    def list(self, path: PathLike = "/", detail: bool = False) -> list[Any]:
        """A directory's entries in name order: names, or with ``detail``
        dicts with ``name``, ``type``, ``ino``, ``size``, ``mode``,
        ``mtime_ns`` (one listing request per 1,000 entries, no stat each)."""
        return self._native.list(os.fspath(path), detail)

    def mkdir(self, path: PathLike, parents: bool = False, exist_ok: bool = False) -> None:
        """Make a directory (and its missing parents with ``parents``)."""
        path = os.fspath(path)
        if parents:
            parts = [p for p in path.split("/") if p]
            for i in range(1, len(parts)):
                try:
                    self._native.mkdir("/" + "/".join(parts[:i]))
                except FileExistsError:
                    pass
        try:
            self._native.mkdir(path)
        except FileExistsError:
            if not exist_ok:
                raise

    def remove(self, path: PathLike) -> None:
        """Remove a file or an empty directory."""
        self._native.remove(os.fspath(path))

    def rename(self, src: PathLike, dst: PathLike) -> None:
        """Atomically rename ``src`` to ``dst`` (replacing a file there)."""
        self._native.rename(os.fspath(src), os.fspath(dst))

    # -- loaders ----------------------------------------------------------------

    def prefetch(
        self,
        items: Iterable[Item],
        window: int = DEFAULT_WINDOW,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
        raise_errors: bool = True,
    ) -> Iterator[tuple[int, Any]]:
        """Read ``items`` (paths, or ``(path, offset, length)`` ranges) with
        at most ``window`` items and ``window_bytes`` bytes in flight;
        iterate for ``(index, data)`` in the order given.

        A failed item raises its error (``FileNotFoundError``...) when its
        turn comes; iterating again goes on with the next item. With
        ``raise_errors=False`` it is yielded as ``(index, exception)``.
        """
        return self._native.prefetch(list(items), window, window_bytes, raise_errors)


def _reconnect(cluster_file: str, options: dict[str, Any]) -> Client:
    return connect(cluster_file, **options)
