"""A streaming reader of tar archives (ustar, GNU long names, pax paths)
over a sequence of byte blocks, as prefetched: members come out in archive
order as ``(name, data)``, each read once, with no seeking.

Only regular files are yielded; directories, links and other entries are
skipped. ``tarfile`` would need a file object and copy each block again;
this walks the prefetched blocks directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

BLOCK = 512


class TarFormatError(ValueError):
    """The bytes are not a tar archive this reader understands."""


class _Blocks:
    """Consume byte blocks as one stream."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._it = iter(blocks)
        self._cur = b""
        self._pos = 0

    def take(self, n: int) -> bytes | None:
        """The next ``n`` bytes, or None at the end (a short tail is an error)."""
        avail = len(self._cur) - self._pos
        if avail >= n:
            out = self._cur[self._pos : self._pos + n]
            self._pos += n
            return out
        parts = [self._cur[self._pos :]] if avail else []
        got = avail
        while got < n:
            block = next(self._it, None)
            if block is None:
                if got == 0:
                    return None
                raise TarFormatError(f"archive ends inside a member ({got} of {n} bytes)")
            if got + len(block) <= n:
                parts.append(block)
                got += len(block)
                self._cur, self._pos = b"", 0
            else:
                need = n - got
                parts.append(block[:need])
                got = n
                self._cur, self._pos = block, need
        return b"".join(parts)

    def skip(self, n: int) -> None:
        if n and self.take(n) is None:
            raise TarFormatError("archive ends inside padding")

    def drain(self) -> None:
        for _ in self._it:
            pass


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * (len(field) - 1))) if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _pax_path(data: bytes) -> str | None:
    path = None
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        if key == b"path":
            path = value.decode("utf-8", "surrogateescape")
        pos += length
    return path


def members(blocks: Iterable[bytes]) -> Iterator[tuple[str, bytes]]:
    """The regular files of the archive made of ``blocks``, in order."""
    s = _Blocks(blocks) if not isinstance(blocks, _Blocks) else blocks
    long_name: str | None = None
    while True:
        header = s.take(BLOCK)
        if header is None or header.count(0) == BLOCK:
            return  # end of archive (two zero blocks, or simply the end)
        stored = _number(header[148:156])
        check = sum(header[:148]) + 8 * 32 + sum(header[156:])
        if stored != check:
            raise TarFormatError("bad header checksum")
        size = _number(header[124:136])
        kind = header[156:157]
        name = header[:100].split(b"\0", 1)[0]
        if header[257:262] == b"ustar":
            prefix = header[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        data = s.take(size) if size else b""
        if data is None:
            raise TarFormatError("archive ends inside a member")
        s.skip(-size % BLOCK)
        if kind == b"L":
            long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        if kind == b"x":
            long_name = _pax_path(data) or long_name
            continue
        if kind in (b"0", b"\0", b"7"):
            yield (long_name or name.decode("utf-8", "surrogateescape")), data
        long_name = None


def split_key(name: str) -> tuple[str, str]:
    """webdataset's grouping: ``dir/abc.seg.png`` → (``dir/abc``, ``seg.png``)."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]
