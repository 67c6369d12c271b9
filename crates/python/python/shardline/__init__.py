"""Shardline for Python: the native client one ``pip install`` away from your data loaders.

>>> import shardline
>>> client = shardline.connect("shardline-data/cluster.toml")
>>> with client.open("/datasets/shard-0000.tar", "rb") as f:
...     header = f.read(512)
>>> for index, data in client.prefetch(["/a.jpg", ("/big.bin", 0, 131072)]):
...     ...

* :func:`connect` returns a :class:`Client`: ``open`` (a file object whose
  ``readinto`` fills your buffer), ``read_range``, ``list``, ``stat``,
  ``put``/``get``, and ``prefetch`` (an epoch's files or ranges read with a
  bounded window in flight, in order).
* ``shardline://`` paths work with fsspec (pandas, pyarrow, Hugging Face
  datasets...): :class:`shardline.fs.ShardlineFileSystem`.
* :mod:`shardline.data`: a map-style and a tar-shard (webdataset layout)
  dataset, shuffled per epoch, that work with PyTorch's DataLoader and its
  worker processes, and without PyTorch.

I/O runs in Rust with the GIL released. Errors are ``OSError`` subclasses
(``FileNotFoundError``, ``PermissionError``...) with their errno. A
connection follows the process across ``fork``: a child (a DataLoader
worker) connects again on first use.
"""

from __future__ import annotations

import importlib.util as _importlib_util

from ._client import Client, connect
from ._file import ShardlineFile, ShardlineWriter

__all__ = ["Client", "ShardlineFile", "ShardlineWriter", "connect"]


def _register_fsspec() -> None:
    """Make ``shardline://`` known to fsspec when fsspec is installed (the
    package's entry point does the same for fsspec without this import)."""
    if _importlib_util.find_spec("fsspec") is None:
        return
    import fsspec

    fsspec.register_implementation("shardline", "shardline.fs.ShardlineFileSystem", clobber=True)


_register_fsspec()
