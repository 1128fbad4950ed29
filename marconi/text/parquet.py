"""Read one string column of a Parquet file without pyarrow: enough for the GloVe word list that ships as Parquet.

Supported: flat schemas, SNAPPY or uncompressed pages, PLAIN and dictionary (PLAIN_DICTIONARY / RLE_DICTIONARY)
encoded BYTE_ARRAY values, data pages v1 and v2, required or optional columns without nulls. Anything else
raises :class:`ParquetError` naming what is missing, so a file written differently fails loudly rather than
giving wrong words. The format: https://parquet.apache.org/docs/file-format/ (Thrift compact protocol metadata).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"PAR1"
CODECS = {0: "UNCOMPRESSED", 1: "SNAPPY", 2: "GZIP", 3: "LZO", 4: "BROTLI", 5: "LZ4", 6: "ZSTD", 7: "LZ4_RAW"}
PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY = 0, 2, 8
DATA_PAGE, DICTIONARY_PAGE, DATA_PAGE_V2 = 0, 2, 3
BYTE_ARRAY = 6
OPTIONAL = 1


class ParquetError(ValueError):
    """The file is not Parquet, or uses a feature this small reader does not implement."""


# ------------------------------------------------------------------------------------- Thrift compact protocol
class _Thrift:
    """Decoder of Thrift compact-protocol structs into {field id: value} dicts (lists, bytes, ints, bools)."""

    def __init__(self, data: bytes, pos: int = 0):
        """Read ``data`` from ``pos``."""
        self.data, self.pos = data, pos

    def _byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        """Return the next unsigned LEB128 integer."""
        result = shift = 0
        while True:
            b = self._byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def _zigzag(self) -> int:
        v = self.varint()
        return (v >> 1) ^ -(v & 1)

    def _value(self, kind: int):
        if kind in (1, 2):  # booleans inside a struct carry their value in the type nibble
            return kind == 1
        if kind == 3:
            return struct.unpack("b", bytes([self._byte()]))[0]
        if kind in (4, 5, 6):
            return self._zigzag()
        if kind == 7:
            (value,) = struct.unpack_from("<d", self.data, self.pos)
            self.pos += 8
            return value
        if kind == 8:
            n = self.varint()
            value = bytes(self.data[self.pos : self.pos + n])
            self.pos += n
            return value
        if kind in (9, 10):
            head = self._byte()
            n, elem = head >> 4, head & 0x0F
            if n == 15:
                n = self.varint()
            if elem in (1, 2):
                return [self._byte() == 1 for _ in range(n)]
            return [self._value(elem) for _ in range(n)]
        if kind == 12:
            return self.struct()
        raise ParquetError(f"unsupported Thrift type {kind} in Parquet metadata")

    def struct(self) -> dict[int, object]:
        """Return the next struct as {field id: value}."""
        out: dict[int, object] = {}
        last = 0
        while True:
            head = self._byte()
            if head == 0:
                return out
            delta, kind = head >> 4, head & 0x0F
            field = last + delta if delta else self._zigzag()
            out[field] = self._value(kind)
            last = field


# ------------------------------------------------------------------------------------------------------ snappy
def snappy_decompress(src: bytes) -> bytes:
    """Return the raw-format Snappy block ``src`` decompressed (literals and back-references)."""
    reader = _Thrift(src)
    size = reader.varint()
    pos, end = reader.pos, len(src)
    out = bytearray()
    while pos < end:
        tag = src[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(src[pos : pos + extra], "little")
                pos += extra
            length += 1
            out += src[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            length, offset = ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | src[pos]
            pos += 1
        elif kind == 2:
            length, offset = (tag >> 2) + 1, int.from_bytes(src[pos : pos + 2], "little")
            pos += 2
        else:
            length, offset = (tag >> 2) + 1, int.from_bytes(src[pos : pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise ParquetError("corrupt Snappy data: a copy reaches before the start")
        start = len(out) - offset
        while length > 0:  # an overlapping copy repeats the last `offset` bytes
            chunk = out[start : start + min(offset, length)]
            out += chunk
            length -= len(chunk)
    if len(out) != size:
        raise ParquetError(f"corrupt Snappy data: {len(out)} bytes decoded, {size} announced")
    return bytes(out)


# ------------------------------------------------------------------------------------------------ value codecs
def plain_byte_arrays(data: bytes, count: int, pos: int = 0) -> list[bytes]:
    """Return ``count`` PLAIN-encoded BYTE_ARRAY values (4-byte little-endian length, then the bytes)."""
    out = []
    view = memoryview(data)
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append(bytes(view[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out


def rle_bitpacked(data: bytes, bit_width: int, count: int, pos: int = 0) -> np.ndarray:
    """Return ``count`` integers of the RLE / bit-packed hybrid encoding (dictionary indices, levels)."""
    out = np.empty(count, dtype=np.int64)
    filled = 0
    reader = _Thrift(data, pos)
    byte_width = (bit_width + 7) // 8
    while filled < count:
        header = reader.varint()
        if header & 1:  # bit-packed: (header >> 1) groups of 8 values, least significant bit first
            n = (header >> 1) * 8
            nbytes = (header >> 1) * bit_width
            raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=reader.pos)
            reader.pos += nbytes
            bits = np.unpackbits(raw, bitorder="little").reshape(-1, bit_width) if bit_width else None
            values = (bits.astype(np.int64) << np.arange(bit_width)).sum(axis=1) if bits is not None else \
                np.zeros(n, dtype=np.int64)
            take = min(n, count - filled)
            out[filled : filled + take] = values[:take]
        else:  # a run of one repeated value
            n = header >> 1
            value = int.from_bytes(data[reader.pos : reader.pos + byte_width], "little")
            reader.pos += byte_width
            take = min(n, count - filled)
            out[filled : filled + take] = value
        filled += take
    return out


# ---------------------------------------------------------------------------------------------------- the file
def _metadata(data: bytes) -> dict:
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise ParquetError("not a Parquet file (no PAR1 magic)")
    (length,) = struct.unpack_from("<i", data, len(data) - 8)
    return _Thrift(data, len(data) - 8 - length).struct()


def _page_values(header: dict, body: bytes, dictionary: list[bytes] | None, optional: bool) -> list[bytes]:
    kind = header[1]
    if kind == DATA_PAGE:
        info = header[5]
        count, encoding = info[1], info[2]
        pos = 0
        if optional:  # definition levels: 4-byte length, then RLE/bit-packed (max level 1)
            (level_bytes,) = struct.unpack_from("<I", body, 0)
            levels = rle_bitpacked(body[4 : 4 + level_bytes], 1, count)
            if not levels.all():
                raise ParquetError("null values are not supported")
            pos = 4 + level_bytes
    else:
        info = header[8]
        count, encoding = info[1], info[4]
        if info.get(2, 0):
            raise ParquetError("null values are not supported")
        pos = info.get(5, 0) + info.get(6, 0)  # definition and repetition level bytes come first, uncompressed
    if encoding == PLAIN:
        return plain_byte_arrays(body, count, pos)
    if encoding in (PLAIN_DICTIONARY, RLE_DICTIONARY):
        if dictionary is None:
            raise ParquetError("dictionary-encoded page without a dictionary page")
        indices = rle_bitpacked(body, body[pos], count, pos + 1)
        return [dictionary[i] for i in indices.tolist()]
    raise ParquetError(f"value encoding {encoding} is not supported (only PLAIN and dictionary)")


def _decompress(codec: int, raw: bytes) -> bytes:
    if codec == 0:
        return raw
    if codec == 1:
        return snappy_decompress(raw)
    raise ParquetError(f"{CODECS.get(codec, codec)} compression is not supported (only SNAPPY and none)")


def read_string_column(path: str | Path, column: str | None = None) -> list[str]:
    """Return every value of one UTF-8 string column (the first one when ``column`` is None), in row order."""
    data = Path(path).read_bytes()
    meta = _metadata(data)
    leaves = [e for e in meta[2][1:] if 1 in e]  # schema elements with a physical type are the columns
    names = [e[4].decode() for e in leaves]
    index = 0 if column is None else (names.index(column) if column in names else -1)
    if index < 0:
        raise ParquetError(f"no column {column!r}; the columns are {', '.join(names)}")
    if leaves[index][1] != BYTE_ARRAY:
        raise ParquetError(f"column {names[index]!r} is not a string (BYTE_ARRAY) column")
    optional = leaves[index].get(3, 0) == OPTIONAL
    out: list[str] = []
    for group in meta[4]:
        chunk = group[1][index][3]
        codec, remaining = chunk[4], chunk[5]
        pos = chunk.get(11, chunk[9])  # the dictionary page, when there is one, comes first
        dictionary = None
        while remaining > 0:
            reader = _Thrift(data, pos)
            header = reader.struct()
            start, pos = reader.pos, reader.pos + header[3]
            if header[1] == DATA_PAGE_V2:
                info = header[8]
                levels = info.get(5, 0) + info.get(6, 0)
                compressed = info.get(7, True)
                body = data[start : start + levels] + (
                    _decompress(codec, data[start + levels : pos]) if compressed else data[start + levels : pos])
            else:
                body = _decompress(codec, data[start:pos])
            if header[1] == DICTIONARY_PAGE:
                dictionary = plain_byte_arrays(body, header[7][1])
                continue
            if header[1] not in (DATA_PAGE, DATA_PAGE_V2):
                continue  # index pages carry no values
            values = _page_values(header, body, dictionary, optional)
            out.extend(v.decode("utf-8") for v in values)
            remaining -= len(values)
    if len(out) != meta[3]:
        raise ParquetError(f"read {len(out)} values but the file has {meta[3]} rows")
    return out
