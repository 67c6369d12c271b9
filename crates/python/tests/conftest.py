"""Fixtures: the cluster `tools/test-python` started (its cluster file in
$SHARDLINE_CLUSTER) and a fresh folder in it for each test."""

from __future__ import annotations

import itertools
import os

import pytest

import shardline

_dirs = itertools.count()


@pytest.fixture(scope="session")
def cluster_file() -> str:
    path = os.environ.get("SHARDLINE_CLUSTER")
    if not path:
        pytest.fail("SHARDLINE_CLUSTER is not set: run these tests with tools/test-python")
    return path


@pytest.fixture(scope="session")
def client(cluster_file: str) -> shardline.Client:
    return shardline.connect(cluster_file)


@pytest.fixture()
def base(client: shardline.Client, request: pytest.FixtureRequest) -> str:
    """A new, empty folder for one test."""
    path = f"/t{os.getpid()}-{next(_dirs)}-{request.node.name[:40]}"
    client.mkdir(path)
    return path


def pattern(seed: int, length: int) -> bytes:
    """Bytes that differ for every (seed, offset)."""
    import hashlib

    out = bytearray()
    block = 0
    while len(out) < length:
        out += hashlib.sha256(f"{seed}:{block}".encode()).digest()
        block += 1
    return bytes(out[:length])


def run_forked_workers(target, args_per_worker: list[tuple], timeout: float = 60.0) -> list:
    """Run ``target(*args, out)`` in one forked process per args tuple and
    return what each put on ``out`` (in arrival order). A worker that hangs
    or dies fails the test, and no worker outlives it."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, out), daemon=True) for args in args_per_worker]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=timeout) for _ in procs]
        for p in procs:
            p.join(timeout=timeout)
            assert p.exitcode == 0, f"worker exited with {p.exitcode}"
        return results
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
