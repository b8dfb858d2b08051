"""Import files kept where every ingest instance can read them: in PostgreSQL, in chunks of up to 1 MiB (stored
uncompressed), written in the transaction that creates the import and deleted with it. An instance reading an
import fetches the file into its own scratch directory first; the copy there is only a cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

CHUNK_BYTES = 1024 * 1024


async def keep(conn: AsyncConnection, import_id: str, path: Path) -> int:
    """Store the file at ``path`` as the import's file, in the caller's transaction; its size."""
    size, seq = 0, 0
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            await conn.execute(
                text("INSERT INTO import_files (import_id, seq, data) VALUES (:id, :seq, :data)"),
                {"id": import_id, "seq": seq, "data": chunk},
            )
            size, seq = size + len(chunk), seq + 1
    finally:
        await asyncio.to_thread(file.close)
    return size


async def keep_bytes(conn: AsyncConnection, import_id: str, data: bytes) -> None:
    """Store ``data`` as the import's file, in the caller's transaction."""
    for seq, start in enumerate(range(0, len(data), CHUNK_BYTES)):
        await conn.execute(
            text("INSERT INTO import_files (import_id, seq, data) VALUES (:id, :seq, :data)"),
            {"id": import_id, "seq": seq, "data": data[start : start + CHUNK_BYTES]},
        )


async def fetch(engine: AsyncEngine, import_id: str, destination: Path) -> bool:
    """Copy the import's file to ``destination`` (one chunk in memory at a time); False if it has none."""
    partial = destination.with_name(destination.name + ".part")
    seq = 0
    file: IO[bytes] = await asyncio.to_thread(partial.open, "wb")
    try:
        async with engine.connect() as conn:
            while True:
                chunk = await conn.scalar(
                    text("SELECT data FROM import_files WHERE import_id = :id AND seq = :seq"),
                    {"id": import_id, "seq": seq},
                )
                if chunk is None:
                    break
                await asyncio.to_thread(file.write, chunk)
                seq += 1
    finally:
        await asyncio.to_thread(file.close)
    if seq == 0:
        partial.unlink(missing_ok=True)
        return False
    await asyncio.to_thread(partial.replace, destination)
    return True


async def discard(conn: AsyncConnection, import_id: str) -> None:
    await conn.execute(text("DELETE FROM import_files WHERE import_id = :id"), {"id": import_id})
