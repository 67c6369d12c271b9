"""An fsspec file system for ``shardline://`` paths.

Registered as the ``shardline`` protocol (by the package's ``fsspec.specs``
entry point, and again on ``import shardline``), so that pandas, pyarrow,
Hugging Face datasets and webdataset-style readers open Shardline paths::

    import pandas as pd
    df = pd.read_parquet("shardline:///datasets/table.parquet",
                         storage_options={"cluster_file": "cluster.toml"})

``shardline:///a/b`` and ``shardline://a/b`` both name ``/a/b``. The cluster
is ``cluster_file`` (a storage option) or ``$SHARDLINE_CLUSTER``.
"""

from __future__ import annotations

import os
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from ._client import Client, connect


def _info(path: str, st: dict[str, Any]) -> dict[str, Any]:
    kind = st.get("type", "file")
    return {
        "name": path,
        "size": st.get("size", 0),
        "type": kind if kind in ("file", "directory") else "other",
        "ino": st.get("ino"),
        "mode": st.get("mode"),
        "mtime": st.get("mtime_ns", 0) / 1e9,
    }


class ShardlineFileSystem(AbstractFileSystem):
    """fsspec file system over a Shardline cluster (protocol ``shardline``)."""

    protocol = "shardline"
    root_marker = "/"

    def __init__(self, cluster_file: str | None = None, client: Client | None = None, **kwargs: Any) -> None:
        super().__init__(cluster_file=cluster_file, **kwargs)
        self.client = client if client is not None else connect(cluster_file)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = os.fspath(path)
        if path.startswith("shardline://"):
            path = path[len("shardline://") :]
        elif path.startswith("shardline::"):
            path = path[len("shardline::") :]
        path = "/" + path.strip("/")
        return path

    def unstrip_protocol(self, name: str) -> str:
        return "shardline://" + self._strip_protocol(name)

    # -- reading the namespace ------------------------------------------------

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        return _info(path, self.client.stat(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        st = self.client.stat(path)
        if st["type"] != "directory":
            out = [_info(path, st)]
        else:
            base = path.rstrip("/")
            out = [_info(f"{base}/{e['name']}", e) for e in self.client.list(path, detail=True)]
        return out if detail else [o["name"] for o in out]

    # -- whole files ------------------------------------------------------------

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        if start is None and end is None:
            return self.client.read_bytes(path)
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.client.stat(path)["size"]
            start = size + start if start is not None and start < 0 else start
            end = size + end if end is not None and end < 0 else end
        start = max(0, start or 0)
        if end is None:
            return self.client.read_bytes(path)[start:]
        return self.client.read_range(path, start, max(0, end - start))

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        if mode == "create" and self.exists(path):
            raise FileExistsError(path)
        self.client.write_bytes(path, value)

    def put_file(self, lpath: str, rpath: str, callback: Any = None, mode: str = "overwrite", **kwargs: Any) -> None:
        rpath = self._strip_protocol(rpath)
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return
        if mode == "create" and self.exists(rpath):
            raise FileExistsError(rpath)
        size = self.client.put(lpath, rpath)
        if callback is not None:
            callback.set_size(size)
            callback.relative_update(size)

    def get_file(self, rpath: str, lpath: str, callback: Any = None, outfile: Any = None, **kwargs: Any) -> None:
        rpath = self._strip_protocol(rpath)
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        if outfile is not None:
            outfile.write(self.client.read_bytes(rpath))
            return
        size = self.client.get(rpath, lpath)
        if callback is not None:
            callback.set_size(size)
            callback.relative_update(size)

    # -- changing the namespace ---------------------------------------------------

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        self.client.mkdir(path, parents=create_parents, exist_ok=False)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.client.mkdir(self._strip_protocol(path), parents=True, exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        self.client.remove(self._strip_protocol(path))

    def rm_file(self, path: str) -> None:
        self.client.remove(self._strip_protocol(path))

    def _rm(self, path: str) -> None:
        self.client.remove(self._strip_protocol(path))

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        """Rename (atomic, one request, whole directories included)."""
        self.client.rename(self._strip_protocol(path1), self._strip_protocol(path2))

    def created(self, path: str) -> Any:
        return self.modified(path)

    def modified(self, path: str) -> Any:
        import datetime

        return datetime.datetime.fromtimestamp(self.info(path)["mtime"], tz=datetime.timezone.utc)

    # -- file objects -------------------------------------------------------------

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ShardlineBufferedFile:
        return ShardlineBufferedFile(
            self, self._strip_protocol(path), mode, block_size, autocommit, cache_options=cache_options, **kwargs
        )


class ShardlineBufferedFile(AbstractBufferedFile):
    """fsspec's buffered file over one open Shardline reader (the file is
    opened once; each block fetched is a range read) or writer (blocks stream
    out as they fill; the file appears when closed)."""

    DEFAULT_BLOCK_SIZE = 4 << 20

    def __init__(self, fs: ShardlineFileSystem, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> None:
        self._reader = None
        self._writer = None
        if mode == "rb":
            self._reader = fs.client._native.open_reader(path)
            kwargs.setdefault("size", self._reader.size)
        elif mode != "wb":
            raise NotImplementedError(f"shardline files open as 'rb' or 'wb', not {mode!r}")
        super().__init__(fs, path, mode, *args, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        assert self._reader is not None
        return self._reader.pread(start, max(0, end - start))

    def _initiate_upload(self) -> None:
        self._writer = self.fs.client._native.open_writer(self.path)

    def _upload_chunk(self, final: bool = False) -> bool:
        if self._writer is None:
            self._initiate_upload()
        assert self._writer is not None
        self._writer.write(self.buffer.getvalue())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.abort()
