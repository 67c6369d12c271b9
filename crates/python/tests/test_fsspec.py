"""fsspec: the shardline:// protocol, as pandas and pyarrow would use it."""

from __future__ import annotations

import fsspec
import pytest

import shardline  # noqa: F401  (registers the protocol)
from conftest import pattern
from shardline.fs import ShardlineFileSystem


@pytest.fixture()
def fs(cluster_file):
    return fsspec.filesystem("shardline", cluster_file=cluster_file)


def test_the_protocol_is_registered(fs):
    assert isinstance(fs, ShardlineFileSystem)
    assert fsspec.get_filesystem_class("shardline") is ShardlineFileSystem


def test_open_cat_ls_info_exists(fs, client, base):
    data = pattern(20, 300_000)
    client.write_bytes(f"{base}/x.bin", data)
    client.write_bytes(f"{base}/y.txt", b"hello\nworld\n")
    url = f"shardline://{base}/x.bin"
    with fsspec.open(url, "rb", cluster_file=client.cluster_file) as f:
        assert f.read(10) == data[:10]
        f.seek(250_000)
        assert f.read(100) == data[250_000:250_100]
    assert fs.cat(f"shardline://{base}/y.txt") == b"hello\nworld\n"
    assert fs.cat_file(f"{base}/x.bin", start=5, end=15) == data[5:15]
    assert fs.cat_file(f"{base}/x.bin", start=-10) == data[-10:]
    assert sorted(fs.ls(base, detail=False)) == [f"{base}/x.bin", f"{base}/y.txt"]
    info = {e["name"]: e for e in fs.ls(f"shardline://{base}")}
    assert info[f"{base}/x.bin"]["size"] == len(data) and info[f"{base}/x.bin"]["type"] == "file"
    assert fs.info(base)["type"] == "directory"
    assert fs.exists(f"{base}/y.txt") and not fs.exists(f"{base}/nope")
    assert fs.isdir(base) and fs.isfile(f"{base}/x.bin")
    with pytest.raises(FileNotFoundError):
        fs.info(f"{base}/nope")
    with fsspec.open(f"shardline://{base}/y.txt", "rt", cluster_file=client.cluster_file) as t:
        assert t.read().splitlines() == ["hello", "world"]


def test_write_put_get_pipe_mv_rm(fs, client, base, tmp_path):
    with fs.open(f"{base}/w.bin", "wb", block_size=5 << 20) as f:
        f.write(pattern(21, 6 << 20))
        f.write(b"end")
    assert client.read_bytes(f"{base}/w.bin") == pattern(21, 6 << 20) + b"end"
    local = tmp_path / "l.bin"
    local.write_bytes(b"local bytes")
    fs.put(str(local), f"{base}/put.bin")
    assert client.read_bytes(f"{base}/put.bin") == b"local bytes"
    fs.get(f"{base}/put.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == b"local bytes"
    fs.pipe(f"{base}/pipe.bin", b"piped")
    assert fs.cat(f"{base}/pipe.bin") == b"piped"
    fs.mv(f"{base}/pipe.bin", f"{base}/moved.bin")
    assert fs.cat(f"{base}/moved.bin") == b"piped" and not fs.exists(f"{base}/pipe.bin")
    fs.makedirs(f"{base}/a/b", exist_ok=True)
    assert fs.isdir(f"{base}/a/b")
    fs.rm(f"{base}/moved.bin")
    assert not fs.exists(f"{base}/moved.bin")


def test_pandas_style_csv_round_trip_through_file_objects(fs, base):
    import csv
    import io

    rows = [["id", "name"], ["1", "ada"], ["2", "grace"]]
    with fs.open(f"{base}/t.csv", "w") as f:
        csv.writer(f).writerows(rows)
    with fs.open(f"{base}/t.csv", "r") as f:
        assert list(csv.reader(io.StringIO(f.read()))) == rows
