"""Datasets for training loops: no framework needed to import them, and
PyTorch datasets when PyTorch is loaded.

* :class:`MapDataset`: ``__len__``/``__getitem__`` over sample files or
  ``(file, offset, length)`` records. ``__getitems__`` (PyTorch's batched
  fetch) reads a batch with one prefetch stream; :meth:`MapDataset.stream`
  (or iterating the dataset) reads a whole epoch in its shuffled order with
  a prefetch window, split across workers.
* :class:`TarDataset`: an iterable over tar shards in the webdataset layout
  (files grouped into samples by their basename up to the first dot), each
  shard streamed once in prefetched blocks.

Both shuffle per epoch from a seed (:meth:`set_epoch`; the same seed and
epoch always give the same order) and split an epoch across DataLoader
workers (``torch.utils.data.get_worker_info``) and, with ``rank`` and
``world_size``, across training processes. Each worker process connects on
its own (a connection follows the process across fork). When ``torch`` has
been imported, instances are subclasses of ``torch.utils.data.Dataset`` or
``IterableDataset`` so that ``DataLoader`` treats them as such.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Union

from . import _tar
from ._client import DEFAULT_WINDOW, DEFAULT_WINDOW_BYTES, Client, connect

#: A sample: a whole file by path, or a ``(path, offset, length)`` record.
Sample = Union[str, tuple[str, int, int]]

_VARIANTS: dict[tuple[type, type], type] = {}


def worker_split() -> tuple[int, int]:
    """``(worker id, number of workers)`` of this DataLoader worker, or
    ``(0, 1)`` outside one (or without PyTorch)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        info = torch.utils.data.get_worker_info()
        if info is not None:
            return info.id, info.num_workers
    return 0, 1


def epoch_rng(seed: int, epoch: int, salt: int = 0) -> random.Random:
    """The random generator of one (seed, epoch): identical in every process."""
    return random.Random((seed * 1_000_003 + epoch) * 65_537 + salt)


def _torch_base(kind: str) -> type | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    data = torch.utils.data
    return data.IterableDataset if kind == "iterable" else data.Dataset


def _restore(plain: type, state: dict[str, Any]) -> Any:
    obj = plain.__new__(plain)
    obj.__dict__.update(state)
    return obj


class _TorchWhenLoaded:
    """Instances subclass PyTorch's dataset classes when ``torch`` is loaded
    (the class is made on first use; importing this module never imports
    torch). Pickles by its plain class, for spawned workers."""

    _torch_kind = "map"

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        plain = cls.__dict__.get("_plain", cls)
        base = _torch_base(plain._torch_kind)
        if base is not None:
            key = (plain, base)
            variant = _VARIANTS.get(key)
            if variant is None:
                variant = type(plain.__name__, (plain, base), {"_plain": plain, "__module__": plain.__module__})
                _VARIANTS[key] = variant
            cls = variant
        return object.__new__(cls)

    def __reduce_ex__(self, protocol: Any) -> Any:
        state = dict(self.__dict__)
        if "_client" in state:
            state["_client"] = None
        return (_restore, (type(self).__dict__.get("_plain", type(self)), state))


class _Connected(_TorchWhenLoaded):
    """A dataset's connection, made lazily in each process that reads."""

    cluster_file: str

    def _init_connection(self, cluster_file: str | None, client: Client | None) -> None:
        if client is not None:
            cluster_file = client.cluster_file
        if cluster_file is None:
            cluster_file = os.environ.get("SHARDLINE_CLUSTER")
        if not cluster_file:
            raise ValueError("give cluster_file or client, or set SHARDLINE_CLUSTER")
        self.cluster_file = os.fspath(cluster_file)
        self._client: Client | None = client

    @property
    def client(self) -> Client:
        """The dataset's client, connected on first use. In a forked worker
        it connects again by itself; pickled (spawned workers), the dataset
        keeps only its cluster file."""
        if self._client is None:
            self._client = connect(self.cluster_file)
        return self._client


def _normalise(sample: Any) -> Sample:
    if isinstance(sample, (tuple, list)):
        path, offset, length = sample
        return (os.fspath(path), int(offset), int(length))
    return os.fspath(sample)


class MapDataset(_Connected):
    """A map-style dataset over sample files or ``(file, offset, length)``
    records.

    :param samples: the samples, in a fixed order (index ``i`` is sample ``i``).
    :param cluster_file: the cluster (default ``$SHARDLINE_CLUSTER``), or
        pass ``client``.
    :param transform: applied to each sample's bytes (decode, augment...).
    :param shuffle: shuffle each epoch's order (from ``seed`` and the epoch).
    :param window: samples in flight when streaming; ``window_bytes`` bytes.
    :param rank: this training process's rank among ``world_size``: each
        reads its share of every epoch.
    """

    _torch_kind = "map"

    def __init__(
        self,
        samples: Iterable[Sample],
        cluster_file: str | None = None,
        *,
        client: Client | None = None,
        transform: Callable[[bytes], Any] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        window: int = DEFAULT_WINDOW,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self._init_connection(cluster_file, client)
        self.samples: list[Sample] = [_normalise(s) for s in samples]
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.window = window
        self.window_bytes = window_bytes
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, sample: Sample) -> bytes:
        if isinstance(sample, tuple):
            return self.client.read_range(*sample)
        return self.client.read_bytes(sample)

    def _out(self, data: bytes) -> Any:
        return self.transform(data) if self.transform is not None else data

    def __getitem__(self, index: int) -> Any:
        return self._out(self._read(self.samples[index]))

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """A batch, read with one prefetch stream (PyTorch calls this)."""
        items = [self.samples[i] for i in indices]
        return [self._out(d) for _, d in self.client.prefetch(items, self.window, self.window_bytes)]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order :meth:`epoch_order` and iteration use."""
        self.epoch = epoch

    def epoch_order(self, epoch: int | None = None) -> list[int]:
        """Every index once, shuffled by (seed, epoch) unless ``shuffle`` is off."""
        order = list(range(len(self.samples)))
        if self.shuffle:
            epoch_rng(self.seed, self.epoch if epoch is None else epoch).shuffle(order)
        return order

    def share(self, worker_id: int = 0, num_workers: int = 1) -> list[int]:
        """The indices worker ``worker_id`` of ``num_workers`` reads this epoch
        (within this rank's share): the shares of all workers and ranks are
        disjoint and together cover the epoch."""
        parts = self.world_size * num_workers
        return self.epoch_order()[self.rank * num_workers + worker_id :: parts]

    def iterate(self, worker_id: int = 0, num_workers: int = 1, with_index: bool = False) -> Iterator[Any]:
        """Stream a worker's share of the epoch in order, prefetched;
        ``with_index`` yields ``(index, sample)``."""
        indices = self.share(worker_id, num_workers)
        items = [self.samples[i] for i in indices]
        for j, data in self.client.prefetch(items, self.window, self.window_bytes):
            yield (indices[j], self._out(data)) if with_index else self._out(data)

    def __iter__(self) -> Iterator[Any]:
        """The epoch in its shuffled order, prefetched (this worker's share
        inside a DataLoader worker)."""
        return self.iterate(*worker_split())

    def sampler(self) -> EpochSampler:
        """A sampler yielding :meth:`epoch_order` (for ``DataLoader(sampler=)``)."""
        return EpochSampler(self)

    def stream(self) -> EpochStream:
        """An iterable view for ``DataLoader``: each worker streams its share
        of the epoch with a prefetch window (instead of fetching by batch)."""
        return EpochStream(self)


class EpochSampler:
    """Yields a :class:`MapDataset`'s current epoch order."""

    def __init__(self, dataset: MapDataset) -> None:
        self.dataset = dataset

    def __iter__(self) -> Iterator[int]:
        return iter(self.dataset.epoch_order())

    def __len__(self) -> int:
        return len(self.dataset)


class EpochStream(_TorchWhenLoaded):
    """An iterable view of a :class:`MapDataset` (an ``IterableDataset``
    under PyTorch): iterating streams this worker's share of the epoch."""

    _torch_kind = "iterable"

    def __init__(self, dataset: MapDataset) -> None:
        self.dataset = dataset

    def __iter__(self) -> Iterator[Any]:
        return iter(self.dataset)

    def __len__(self) -> int:
        return len(self.dataset.share(0, 1))

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)


class TarDataset(_Connected):
    """An iterable dataset over tar shards in the webdataset layout.

    Each sample is a dict: ``__key__`` (the members' shared name up to the
    first dot of the basename), ``__shard__``, and one entry per extension
    (``"jpg"``, ``"cls"``, ``"seg.png"``...) holding that member's bytes;
    ``transform`` is applied to it. Every epoch reads each shard once,
    streaming it in ``block_size`` ranges with ``window`` blocks in flight.

    :param shards: the shard files.
    :param shuffle: shuffle the shard order each epoch (from ``seed``), and
        with ``shuffle_buffer`` > 0 the samples through a buffer that large.
    """

    _torch_kind = "iterable"

    def __init__(
        self,
        shards: Iterable[str],
        cluster_file: str | None = None,
        *,
        client: Client | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        shuffle_buffer: int = 0,
        block_size: int = 4 << 20,
        window: int = 8,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self._init_connection(cluster_file, client)
        self.shards = [os.fspath(s) for s in shards]
        self.transform = transform
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.block_size = block_size
        self.window = window
        self.window_bytes = window_bytes
        self.epoch = 0
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard_order(self, epoch: int | None = None) -> list[str]:
        order = list(self.shards)
        if self.shuffle:
            epoch_rng(self.seed, self.epoch if epoch is None else epoch).shuffle(order)
        return order

    def share(self, worker_id: int = 0, num_workers: int = 1) -> list[str]:
        """The shards worker ``worker_id`` of ``num_workers`` reads this epoch."""
        parts = self.world_size * num_workers
        return self.shard_order()[self.rank * num_workers + worker_id :: parts]

    def iterate(self, worker_id: int = 0, num_workers: int = 1) -> Iterator[Any]:
        """A worker's share of the epoch, sample by sample."""
        samples = self._samples(self.share(worker_id, num_workers))
        if self.shuffle and self.shuffle_buffer > 0:
            samples = self._shuffled(samples, epoch_rng(self.seed, self.epoch, salt=1 + worker_id))
        for s in samples:
            yield self.transform(s) if self.transform is not None else s

    def __iter__(self) -> Iterator[Any]:
        return self.iterate(*worker_split())

    def _samples(self, shards: list[str]) -> Iterator[dict[str, Any]]:
        client = self.client
        bs = self.block_size
        plan = []  # (shard, number of blocks)
        items: list[tuple[str, int, int]] = []
        for shard in shards:
            size = client.stat(shard)["size"]
            blocks = [(shard, off, min(bs, size - off)) for off in range(0, size, bs)]
            plan.append((shard, len(blocks)))
            items.extend(blocks)
        stream = iter(client.prefetch(items, self.window, self.window_bytes))

        def blocks_of(n: int) -> Iterator[bytes]:
            for _ in range(n):
                yield next(stream)[1]

        for shard, n in plan:
            blocks = blocks_of(n)
            key: str | None = None
            sample: dict[str, Any] = {}
            for name, data in _tar.members(blocks):
                k, ext = _tar.split_key(name)
                if k != key:
                    if sample:
                        yield sample
                    key, sample = k, {"__key__": k, "__shard__": shard}
                sample[ext] = data
            if sample:
                yield sample
            for _ in blocks:  # the archive's end padding
                pass

    def _shuffled(self, samples: Iterator[Any], rng: random.Random) -> Iterator[Any]:
        buf: list[Any] = []
        for s in samples:
            buf.append(s)
            if len(buf) >= self.shuffle_buffer:
                i = rng.randrange(len(buf))
                buf[i], buf[-1] = buf[-1], buf[i]
                yield buf.pop()
        rng.shuffle(buf)
        yield from buf
