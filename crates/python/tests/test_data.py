"""Datasets: seeded per-epoch shuffles that read every sample exactly once,
tar shards in the webdataset layout, worker processes, PyTorch duck typing."""

from __future__ import annotations

import io
import pickle
import sys
import tarfile
import types

import pytest

from conftest import pattern, run_forked_workers
from shardline.data import MapDataset, TarDataset


@pytest.fixture()
def samples(client, base):
    """40 small files and 40 records inside one larger file."""
    files = []
    for i in range(40):
        p = f"{base}/s{i:03d}"
        client.write_bytes(p, pattern(i, 500 + 37 * i))
        files.append(p)
    blob = pattern(999, 40 * 3000)
    client.write_bytes(f"{base}/blob", blob)
    records = [(f"{base}/blob", i * 3000 + 11, 2000) for i in range(40)]
    expect = [pattern(i, 500 + 37 * i) for i in range(40)] + [blob[o : o + n] for _, o, n in records]
    return files + records, expect


def test_a_map_epoch_reads_every_sample_once_in_a_seeded_shuffled_order(client, samples):
    items, expect = samples
    ds = MapDataset(items, client=client, seed=7, window=5)
    assert len(ds) == len(items)
    assert ds[3] == expect[3] and ds[45] == expect[45]
    got = list(ds.iterate(with_index=True))
    order = [i for i, _ in got]
    assert sorted(order) == list(range(len(items))), "not every sample exactly once"
    assert order != list(range(len(items))), "not shuffled"
    assert all(data == expect[i] for i, data in got)
    assert order == ds.epoch_order()
    # Same seed and epoch: same order, in another instance too.
    assert MapDataset(items, client=client, seed=7).epoch_order() == order
    # Another epoch or another seed: another order.
    ds.set_epoch(1)
    assert ds.epoch_order() != order and sorted(ds.epoch_order()) == sorted(order)
    assert MapDataset(items, client=client, seed=8).epoch_order() != order
    # Without shuffling: the given order.
    assert MapDataset(items, client=client, shuffle=False).epoch_order() == list(range(len(items)))


def test_a_batch_is_fetched_in_order(client, samples):
    items, expect = samples
    ds = MapDataset(items, client=client, transform=len)
    assert ds.__getitems__([5, 50, 0]) == [len(expect[5]), len(expect[50]), len(expect[0])]


def _read_share(ds, worker, workers, out):
    out.put([i for i, _ in ds.iterate(worker, workers, with_index=True)])


def test_forked_workers_each_read_their_share_and_together_everything_once(client, samples):
    items, _ = samples
    ds = MapDataset(items, client.cluster_file, seed=3)
    # Several rounds, the parent reading just before each fork: a lock that
    # one of the parent's runtime threads holds at the fork (parking_lot's
    # global table, once) hung a child about one round in four.
    for _round in range(6):
        ds[0]  # the parent connects first: the children must not reuse its connection
        shares = run_forked_workers(_read_share, [(ds, w, 4) for w in range(4)])
        union = [i for s in shares for i in s]
        assert sorted(union) == list(range(len(items))), "shares overlap or miss samples"
        assert all(len(s) == len(items) // 4 for s in shares)
    # Ranks split further, the same way.
    all_parts = [MapDataset(items, client=client, seed=3, rank=r, world_size=2).share(w, 2) for r in range(2) for w in range(2)]
    assert sorted(i for p in all_parts for i in p) == list(range(len(items)))


def _tar_bytes(members, fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture()
def shards(client, base):
    """4 shards of 10 samples (3 members each), one per tar dialect, one
    with a long name."""
    formats = [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]
    paths, keys = [], []
    for s, fmt in enumerate(formats):
        members = []
        for i in range(10):
            key = f"shard{s}/{'long-' * 30 if s == 3 and i == 0 else ''}sample{i:04d}"
            keys.append(key)
            members += [(f"{key}.jpg", pattern(s * 100 + i, 3000 + i)), (f"{key}.cls", str(i).encode()),
                        (f"{key}.seg.png", b"seg" * i)]
        path = f"{base}/shard-{s}.tar"
        client.write_bytes(path, _tar_bytes(members, fmt))
        paths.append(path)
    return paths, keys


def test_tar_shards_stream_every_sample_once_grouped_by_key(client, shards):
    paths, keys = shards
    # Small blocks, so members straddle block boundaries.
    ds = TarDataset(paths, client=client, seed=1, block_size=4096, window=3)
    got = list(ds)
    assert sorted(s["__key__"] for s in got) == sorted(keys)
    for s in got:
        shard, i = int(s["__key__"].split("/")[0][5:]), int(s["__key__"][-4:])
        assert s["jpg"] == pattern(shard * 100 + i, 3000 + i)
        assert s["cls"] == str(i).encode() and s["seg.png"] == b"seg" * i
        assert s["__shard__"] == paths[shard]
    # Shards come in a seeded order, each streamed whole.
    shard_order = list(dict.fromkeys(s["__shard__"] for s in got))
    assert shard_order == ds.shard_order()
    ds.set_epoch(1)
    orders = {tuple(TarDataset(paths, client=client, seed=1).shard_order(e)) for e in range(6)}
    assert len(orders) > 1, "the shard order never changes between epochs"
    # A shuffle buffer mixes samples across shards, keeping each once.
    mixed = [s["__key__"] for s in TarDataset(paths, client=client, seed=1, shuffle_buffer=16)]
    assert sorted(mixed) == sorted(keys) and mixed != [s["__key__"] for s in got]


def _read_tar_share(ds, worker, workers, out):
    out.put([s["__key__"] for s in ds.iterate(worker, workers)])


def test_tar_workers_split_the_shards(client, shards):
    paths, keys = shards
    ds = TarDataset(paths, client.cluster_file, seed=2)
    shares = run_forked_workers(_read_tar_share, [(ds, w, 2) for w in range(2)])
    assert all(len(s) == 20 for s in shares)
    assert sorted(shares[0] + shares[1]) == sorted(keys)


def test_datasets_become_torch_datasets_when_torch_is_loaded(client, samples, shards, monkeypatch):
    """With a stand-in `torch` module loaded (the real one is not needed),
    instances subclass its dataset classes, split by its worker info, and
    pickle for spawned workers."""

    class Dataset:
        pass

    class IterableDataset(Dataset):
        pass

    worker = types.SimpleNamespace(id=1, num_workers=3)
    data_mod = types.SimpleNamespace(Dataset=Dataset, IterableDataset=IterableDataset, get_worker_info=lambda: worker)
    fake = types.ModuleType("torch")
    fake.utils = types.SimpleNamespace(data=data_mod)
    monkeypatch.setitem(sys.modules, "torch", fake)

    items, _ = samples
    ds = MapDataset(items, client.cluster_file, seed=4)
    assert isinstance(ds, Dataset) and isinstance(ds, MapDataset)
    assert isinstance(ds.stream(), IterableDataset)
    assert [i for i, _ in ds.iterate(*ds_split(), with_index=True)] == ds.share(1, 3)
    assert len(list(ds)) == len(ds.share(1, 3)), "iteration did not use the worker info"
    again = pickle.loads(pickle.dumps(ds))
    assert isinstance(again, Dataset) and again.epoch_order() == ds.epoch_order() and again[0] == ds[0]
    tar = TarDataset(shards[0], client.cluster_file)
    assert isinstance(tar, IterableDataset)
    assert len(list(tar)) == 10, "worker 1 of 3 reads one of the 4 shards"


def ds_split():
    from shardline.data import worker_split

    return worker_split()
