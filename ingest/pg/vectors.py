"""pgvector's `vector` type as float32 numpy arrays, both ways, in pgvector's binary format (no text round trip)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from psycopg import Connection
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format
from psycopg.types import TypeInfo


def to_binary(vector: Any) -> bytes:
    """pgvector's wire format: dimension (int16), unused (int16), then big-endian float32 values."""
    v = np.asarray(vector, dtype=">f4").reshape(-1)
    return struct.pack(">HH", len(v), 0) + v.tobytes()


def from_binary(data: bytes | bytearray | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=">f4", offset=4).astype(np.float32)


def register_vector(conn: Connection[Any]) -> bool:
    """Adapt numpy arrays to `vector` and back on this connection; False when the extension is not there yet."""
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        return False
    info.register(conn)  # the name "vector" for COPY's set_types

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = info.oid

        def dump(self, obj: Any) -> bytes:
            return to_binary(obj)

    class VectorBinaryLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> np.ndarray:
            return from_binary(data)

    class VectorTextLoader(Loader):
        def load(self, data: Any) -> np.ndarray:
            return np.array(bytes(data).decode("ascii")[1:-1].split(","), dtype=np.float32)

    conn.adapters.register_dumper(np.ndarray, VectorDumper)
    conn.adapters.register_loader(info.oid, VectorBinaryLoader)
    conn.adapters.register_loader(info.oid, VectorTextLoader)
    return True
