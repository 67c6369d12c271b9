"""The loader benchmark behind tools/bench-python: one dataset read three
ways in the same run, on the same fresh local cluster.

* native: the Rust client's prefetch streams driven in Rust
  (`shardline._native.bench_read`, no Python per item);
* python: the `shardline` package as a training job uses it (TarDataset
  parsing samples; MapDataset streams in 8 forked worker processes);
* fuse: the same Python loader code reading through a fresh `shardline
  mount` (kernel page cache cold), as a Dataset over a mount does.

Two datasets: tar shards (webdataset layout, 128 KiB samples), read in
order; and small files (64-128 KiB, in 100 folders) read shuffled by 8
worker processes. Every pass reads the same bytes; a warm-up pass first
makes the data servers' caches equal for all three. MB/s = 10^6 bytes/s.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

import shardline
from shardline import _native, _tar
from shardline.data import MapDataset, TarDataset


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_shard(path: str, size: int, sample: int, seed: int) -> int:
    """A tar shard of about `size` bytes: samples of `sample` bytes (.bin) and
    a small label (.cls) each. Returns the number of samples."""
    rnd = random.Random(seed)
    count = max(1, size // (sample + 3 * 512))
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        for n in range(count):
            key = f"s{seed:02d}/{n:07d}"
            for ext, data in (("bin", rnd.randbytes(sample)), ("cls", str(n % 1000).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return count


def mount(binary: str, cluster_file: str, where: str) -> int:
    out = subprocess.run(
        [binary, "mount", "--cluster", cluster_file, where, "--daemon"],
        check=True, capture_output=True, text=True,
    ).stdout
    return int(out.split("(pid ")[1].split(",")[0])


def unmount(pid: int, where: str) -> None:
    os.kill(pid, 15)
    for _ in range(200):
        if not os.path.ismount(where):
            return
        time.sleep(0.05)
    subprocess.run(["fusermount3", "-u", where], check=False)


def rate(nbytes: int, secs: float) -> float:
    return nbytes / secs / 1e6


# -- tar shards ---------------------------------------------------------------

def tar_native(client, shards, sizes, block, window):
    shares = [[(s, off, min(block, size - off)) for s, size in zip(shards, sizes) for off in range(0, size, block)]]
    nbytes, _, secs = _native.bench_read(client._native, shares, window=window)
    return nbytes, secs


def tar_python(client, shards, block, window):
    ds = TarDataset(shards, client=client, shuffle=False, block_size=block, window=window)
    t0 = time.perf_counter()
    n = sum(len(s["bin"]) for s in ds)
    return n, time.perf_counter() - t0


def tar_fuse(mnt, shards, block):
    t0 = time.perf_counter()
    n = 0
    for s in shards:
        with open(mnt + s, "rb", buffering=0) as f:
            blocks = iter(lambda: f.read(block), b"")
            n += sum(len(d) for name, d in _tar.members(blocks) if name.endswith(".bin"))
    return n, time.perf_counter() - t0


# -- small files, 8 workers ------------------------------------------------------

def _worker(kind, arg, share_of, barrier, out):
    """One loader worker: wait for the others, read its share, report."""
    if kind == "python":
        ds = arg
        ds.client.stat("/")  # connect in this process before the clock starts
        barrier.wait()
        t0 = time.perf_counter()
        n = sum(len(d) for d in ds.iterate(*share_of))
    elif kind == "python-getitem":
        ds, indices = arg
        ds.client.stat("/")
        barrier.wait()
        t0 = time.perf_counter()
        n = sum(len(ds[i]) for i in indices)
    else:  # fuse: open() and read() through the mount, one file after another
        paths = arg
        barrier.wait()
        t0 = time.perf_counter()
        n = 0
        for p in paths:
            with open(p, "rb") as f:
                n += len(f.read())
    out.put((n, t0, time.perf_counter()))


def run_workers(kind, args):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(args))
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(kind, a, s, barrier, out)) for a, s in args]
    for p in procs:
        p.start()
    res = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    return sum(r[0] for r in res), max(r[2] for r in res) - min(r[1] for r in res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cluster", required=True, help="cluster.toml of a running cluster")
    ap.add_argument("--binary", required=True, help="the shardline binary (for the mount)")
    ap.add_argument("--work", required=True, help="a scratch folder (local files, the mount point)")
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--shard-mib", type=int, default=256)
    ap.add_argument("--sample-kib", type=int, default=128)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--window", type=int, default=16, help="prefetch window (items) per stream")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds; each row is the median")
    ap.add_argument("--no-fuse", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    client = shardline.connect(a.cluster)
    mnt = os.path.join(a.work, "mnt")
    os.makedirs(mnt, exist_ok=True)
    block = 4 << 20
    result: dict[str, object] = {"shards": a.shards, "shard_mib": a.shard_mib, "sample_kib": a.sample_kib,
                                 "files": a.files, "workers": a.workers, "window": a.window, "rounds": a.rounds}

    # Data.
    log(f"writing {a.shards} tar shards of {a.shard_mib} MiB ({a.sample_kib} KiB samples)")
    client.mkdir("/tar")
    shards = []
    for i in range(a.shards):
        local = os.path.join(a.work, f"shard-{i}.tar")
        make_shard(local, a.shard_mib << 20, a.sample_kib << 10, i)
        client.put(local, f"/tar/shard-{i:04d}.tar")
        os.remove(local)
        shards.append(f"/tar/shard-{i:04d}.tar")
    sizes = [client.stat(s)["size"] for s in shards]
    log(f"writing {a.files} files of 64-128 KiB in 100 folders (8 threads)")
    rnd = random.Random(42)
    files = [(f"/small/d{i % 100:02d}/f{i:05d}", rnd.randrange(64 << 10, (128 << 10) + 1)) for i in range(a.files)]
    client.mkdir("/small")
    for d in range(min(100, a.files)):
        client.mkdir(f"/small/d{d:02d}")
    payload = os.urandom(128 << 10)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda f: client.write_bytes(f[0], payload[: f[1]]), files))
    result["small_write_files_per_s"] = a.files / (time.perf_counter() - t0)
    small_bytes = sum(n for _, n in files)

    # Warm-up: every byte read once, so that the data servers' caches are
    # the same for the three timed passes.
    log("warm-up pass")
    tar_native(client, shards, sizes, block, a.window)
    _native.bench_read(client._native, [[p for p, _ in files]], window=a.window)

    samples: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    ds = MapDataset([p for p, _ in files], client=client, seed=1, window=a.window)
    shares = [[ds.samples[i] for i in ds.share(w, a.workers)] for w in range(a.workers)]
    # Rounds interleave the three ways, so that a busy neighbour slows all
    # of them alike; each row reports its median.
    for r in range(a.rounds):
        log(f"round {r + 1}/{a.rounds}: tar shards, native / python TarDataset")
        record("tar_native", rate(*tar_native(client, shards, sizes, block, a.window)))
        n, secs = tar_python(client, shards, block, a.window)
        record("tar_python", rate(sum(sizes), secs))
        log(f"round {r + 1}/{a.rounds}: small files, native {a.workers} streams / python {a.workers} workers")
        nbytes, _, secs = _native.bench_read(client._native, shares, window=a.window)
        assert nbytes == small_bytes, (nbytes, small_bytes)
        record("small_native", a.files / secs)
        nbytes, secs = run_workers("python", [(ds, (w, a.workers)) for w in range(a.workers)])
        assert nbytes == small_bytes, (nbytes, small_bytes)
        record("small_python", a.files / secs)
        nbytes, secs = run_workers("python-getitem", [((ds, ds.share(w, a.workers)), None) for w in range(a.workers)])
        assert nbytes == small_bytes, (nbytes, small_bytes)
        record("small_python_getitem", a.files / secs)
        if a.no_fuse:
            continue
        for what in ("tar", "small"):
            pid = mount(a.binary, a.cluster, mnt)  # fresh: the kernel's cache is cold
            try:
                log(f"round {r + 1}/{a.rounds}: {what}, fuse")
                if what == "tar":
                    n, secs = tar_fuse(mnt, shards, block)
                    record("tar_fuse", rate(sum(sizes), secs))
                else:
                    args = [([mnt + p for p in share], None) for share in shares]
                    nbytes, secs = run_workers("fuse", args)
                    assert nbytes == small_bytes, (nbytes, small_bytes)
                    record("small_fuse", a.files / secs)
            finally:
                unmount(pid, mnt)
    rows = {k: statistics.median(v) for k, v in samples.items()}
    result["all_rounds"] = samples

    result.update(rows)
    ratios = {
        "tar_python_vs_native": rows["tar_python"] / rows["tar_native"],
        "small_python_vs_native": rows["small_python"] / rows["small_native"],
    }
    if not a.no_fuse:
        ratios["tar_python_vs_fuse"] = rows["tar_python"] / rows["tar_fuse"]
        ratios["small_python_vs_fuse"] = rows["small_python"] / rows["small_fuse"]
    result["ratios"] = ratios
    if a.json:
        print(json.dumps(result, indent=2))
        return
    mb = small_bytes / a.files / 1e6
    print(f"median of {a.rounds} rounds")
    print(f"tar shards: {a.shards} x {a.shard_mib} MiB, {a.sample_kib} KiB samples, read in order (MB/s)")
    for k in ("native", "python", "fuse"):
        if f"tar_{k}" in rows:
            print(f"  {k:<8} {rows[f'tar_{k}']:9.0f}")
    print(f"small files: {a.files} of 64-128 KiB, shuffled, {a.workers} workers (files/s, MB/s)")
    for k in ("native", "python", "python_getitem", "fuse"):
        if f"small_{k}" in rows:
            print(f"  {k:<15} {rows[f'small_{k}']:8.0f} {rows[f'small_{k}'] * mb:8.0f}")
    print(f"  (written at {result['small_write_files_per_s']:.0f} files/s)")
    print("ratios:")
    for k, v in ratios.items():
        print(f"  {k:<24} {v:6.2f}")


if __name__ == "__main__":
    main()
