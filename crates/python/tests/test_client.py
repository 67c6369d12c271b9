"""The client API against a real cluster: round trips, file objects,
ranges, listings, errors, fork, prefetch."""

from __future__ import annotations

import io
import os
import pickle
import select
import signal

import pytest

import shardline
from conftest import pattern

CHUNK = 64 << 10  # tools/test-python starts the cluster with 64 KiB chunks


def test_write_read_round_trips_at_every_size(client, base):
    for n, size in enumerate([0, 1, 4095, CHUNK, CHUNK + 1, 3 * CHUNK + 17]):
        data = pattern(n, size)
        assert client.write_bytes(f"{base}/f{n}", data) == size
        assert client.read_bytes(f"{base}/f{n}") == data
        assert client.stat(f"{base}/f{n}")["size"] == size


def test_put_and_get_stream_local_files(client, base, tmp_path):
    data = pattern(7, 5 * CHUNK + 3)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    assert client.put(src, f"{base}/up") == len(data)
    dst = tmp_path / "dst.bin"
    assert client.get(f"{base}/up", dst) == len(data)
    assert dst.read_bytes() == data
    assert not [p for p in os.listdir(tmp_path) if p.endswith("shardline-part")]


def test_readinto_fills_a_bytearray_and_a_memoryview_slice(client, base):
    data = pattern(1, 2 * CHUNK + 500)
    client.write_bytes(f"{base}/r", data)
    with client.open(f"{base}/r", "rb") as f:
        assert isinstance(f, io.RawIOBase) and f.readable() and f.seekable()
        buf = bytearray(CHUNK + 10)  # crosses a chunk boundary
        assert f.readinto(buf) == len(buf)
        assert bytes(buf) == data[: len(buf)]
        whole = bytearray(b"\xee" * 100)
        view = memoryview(whole)[20:60]
        f.seek(2 * CHUNK + 480)
        assert f.readinto(view) == 20, "only 20 bytes are left in the file"
        assert bytes(whole[20:40]) == data[-20:]
        assert bytes(whole[:20]) == b"\xee" * 20 and bytes(whole[40:]) == b"\xee" * 60, "bytes outside were touched"
        assert f.readinto(bytearray(10)) == 0, "at the end of the file"
        with pytest.raises(BufferError):
            f.readinto(b"read-only bytes")


def test_read_seek_tell_and_buffered_reads(client, base):
    data = pattern(2, 3 * CHUNK)
    client.write_bytes(f"{base}/s", data)
    f = client.open(f"{base}/s")
    assert f.read(10) == data[:10] and f.tell() == 10
    f.seek(-5, os.SEEK_END)
    assert f.read() == data[-5:]
    f.seek(CHUNK - 3)
    assert f.read(6) == data[CHUNK - 3 : CHUNK + 3]
    f.close()
    with pytest.raises(ValueError):
        f.read(1)
    with client.open(f"{base}/s", "rb", buffering=1 << 20) as b:
        assert isinstance(b, io.BufferedReader)
        assert b.read(100) == data[:100] and b.readline() is not None


def test_read_range_reads_inside_across_and_past_the_end(client, base):
    data = pattern(3, 2 * CHUNK + 100)
    client.write_bytes(f"{base}/g", data)
    assert client.read_range(f"{base}/g", 1000, 4096) == data[1000:5096]
    assert client.read_range(f"{base}/g", CHUNK - 10, 20) == data[CHUNK - 10 : CHUNK + 10]
    assert client.read_range(f"{base}/g", len(data) - 10, 1000) == data[-10:]
    assert client.read_range(f"{base}/g", len(data) + 10, 10) == b""


def test_list_and_stat(client, base):
    client.mkdir(f"{base}/d/e", parents=True)
    client.write_bytes(f"{base}/d/b", b"bb")
    client.write_bytes(f"{base}/d/a", b"a")
    assert client.list(f"{base}/d") == ["a", "b", "e"]
    detail = {e["name"]: e for e in client.list(f"{base}/d", detail=True)}
    assert detail["a"]["type"] == "file" and detail["a"]["size"] == 1
    assert detail["e"]["type"] == "directory"
    st = client.stat(f"{base}/d/b")
    assert st["type"] == "file" and st["size"] == 2 and st["encrypted"]
    assert client.exists(f"{base}/d/a") and not client.exists(f"{base}/d/zz")


def test_missing_paths_raise_file_not_found_with_errno_and_name(client, base):
    missing = f"{base}/no/such"
    for call in (
        lambda: client.stat(missing),
        lambda: client.read_bytes(missing),
        lambda: client.read_range(missing, 0, 10),
        lambda: client.open(missing),
        lambda: client.list(missing),
    ):
        with pytest.raises(FileNotFoundError) as e:
            call()
        assert e.value.errno == 2 and e.value.filename == missing


def test_other_errors_map_to_their_os_error(client, base):
    client.mkdir(f"{base}/dir")
    with pytest.raises(IsADirectoryError):
        client.read_bytes(f"{base}/dir")
    client.write_bytes(f"{base}/file", b"x")
    with pytest.raises(NotADirectoryError):
        client.list(f"{base}/file")
    with pytest.raises(FileExistsError):
        client.mkdir(f"{base}/dir")
    with pytest.raises(FileNotFoundError):
        shardline.connect(f"{base}/not-a-cluster-file.toml")


def test_writer_appears_only_when_closed_and_not_on_error(client, base):
    w = client.open(f"{base}/w", "wb")
    w.write(pattern(4, CHUNK + 5))
    w.write(b"tail")
    assert not client.exists(f"{base}/w"), "visible before close"
    w.close()
    assert client.read_bytes(f"{base}/w") == pattern(4, CHUNK + 5) + b"tail"
    with pytest.raises(RuntimeError):
        with client.open(f"{base}/never", "wb") as w2:
            w2.write(b"partial")
            raise RuntimeError("boom")
    assert not client.exists(f"{base}/never")


def test_prefetch_yields_items_in_order_and_errors_per_item(client, base):
    files = {f"{base}/p{i}": pattern(10 + i, 1000 * i + CHUNK * (i % 3)) for i in range(20)}
    for p, d in files.items():
        client.write_bytes(p, d)
    items = []
    expect = []
    for p, d in files.items():
        items.append(p)
        expect.append(d)
        items.append((p, 7, 300))
        expect.append(d[7:307])
    items.insert(5, f"{base}/missing")
    expect.insert(5, FileNotFoundError)
    stream = client.prefetch(items, window=4, window_bytes=3 * CHUNK)
    got = []
    while True:
        try:
            got.append(next(stream))
        except StopIteration:
            break
        except FileNotFoundError as e:
            got.append((len(got), type(e)))
    assert [i for i, _ in got] == list(range(len(items)))
    assert [d for _, d in got] == expect
    max_items, max_bytes = stream.stats()
    assert max_items <= 4 and max_bytes <= 3 * CHUNK
    # With raise_errors=False a failure is yielded in its place.
    out = list(client.prefetch([f"{base}/missing", f"{base}/p1"], raise_errors=False))
    assert isinstance(out[0][1], FileNotFoundError) and out[1] == (1, files[f"{base}/p1"])


def test_a_client_used_after_fork_reconnects_in_the_child(client, base):
    data = pattern(5, CHUNK + 1)
    client.write_bytes(f"{base}/fork", data)
    f = client.open(f"{base}/fork")  # opened in the parent
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = b"0"
        try:
            f.seek(1)
            ok = b"1" if (client.read_bytes(f"{base}/fork") == data and f.read(10) == data[1:11]) else b"0"
        finally:
            os.write(w, ok)
            os._exit(0)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], 60)
        assert ready, "the child hung"
        assert os.read(r, 1) == b"1", "the child could not read through the inherited client"
    finally:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert client.read_range(f"{base}/fork", 0, 5) == data[:5], "the parent's connection broke"


def test_a_client_pickles_as_its_cluster_file(client, base):
    client.write_bytes(f"{base}/pk", b"pickled")
    again = pickle.loads(pickle.dumps(client))
    assert again.cluster_file == client.cluster_file
    assert again.read_bytes(f"{base}/pk") == b"pickled"
