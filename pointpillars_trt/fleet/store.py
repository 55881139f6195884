"""The output Parquet file, written so that a run can stop anywhere and be resumed.

Result rows go to ``OUT.parquet.parts/part-NNNNN.parquet`` as they arrive (each part written
atomically, every ``part_rows`` rows or ``part_seconds``); :meth:`ResultStore.finish` merges
``OUT.parquet`` and the parts into a new ``OUT.parquet``, moved into place atomically (the old
file survives a failure), and removes the parts. A new store first merges the parts a stopped run
left. :attr:`ResultStore.done` holds the keys ``(source, index)`` of frames that ran (no error):
the next run plans only the others; a frame that failed is run again and its new row replaces the
old one.

The file's metadata records what made the rows (the model, its options, the score threshold):
rows of another model are never mixed in (:class:`~pointpillars_trt.errors.OutputError`; give
another output, or ``overwrite=True``).
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import OutputError
from ..io.atomic import atomic_file, check_writable
from .results import RUN_METADATA_KEY, result_schema


def write_parquet_atomically(path: Path, tables: Iterable[Any], schema) -> Path:
    """Stream ``tables`` (pyarrow, ``schema``) into ``path`` through :func:`~pointpillars_trt.io.atomic.atomic_file`."""
    import pyarrow.parquet as pq

    with atomic_file(path) as fh:
        with pq.ParquetWriter(fh, schema) as writer:
            for table in tables:
                writer.write_table(table.replace_schema_metadata(schema.metadata))
    return path


def read_run(path: Path) -> str | None:
    """The run description recorded in a result file (None when it has none)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid and OSError subclasses
        raise OutputError(f"{path}: not a readable Parquet file ({exc}); give another output, or overwrite it") from exc
    value = meta.get(RUN_METADATA_KEY)
    return value.decode() if value is not None else None


def row_keys(table) -> list[tuple[str, int]]:
    """``(source, index)`` of each row of a result table."""
    return list(zip(table.column("source").to_pylist(), table.column("index").to_pylist()))


class ResultStore:
    """``OUT.parquet`` and its parts; see the module docstring. ``run``: what makes the rows
    (JSON-able; compared with the run recorded in an existing output)."""

    def __init__(self, path: str | Path, run: Mapping[str, Any], *, overwrite: bool = False, part_rows: int = 2048,
                 part_seconds: float = 30.0) -> None:
        self.path = check_writable(Path(path))
        self.parts_dir = self.path.with_name(self.path.name + ".parts")
        self.run = json.dumps(run, sort_keys=True, default=str)
        self.schema = result_schema().with_metadata({RUN_METADATA_KEY: self.run.encode()})
        self.part_rows, self.part_seconds = part_rows, part_seconds
        self.keep_old = not overwrite
        if overwrite:
            shutil.rmtree(self.parts_dir, ignore_errors=True)
        elif self.parts():
            self._check(self.parts()[0])
            self._merge()  # what a stopped run left
        if self.keep_old and self.path.exists():
            self._check(self.path)
        self.done = self._done_keys() if self.keep_old else set()
        self._pending: list[Any] = []
        self._pending_rows, self._last_flush, self._next_part = 0, time.monotonic(), 0
        self.rows = 0

    def parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet")) if self.parts_dir.is_dir() else []

    def _check(self, path: Path) -> None:
        old = read_run(path)
        if old != self.run:
            raise OutputError(f"{path}: holds results of another run ({old}); this run is {self.run}: "
                              "give another output, or overwrite it")

    def _done_keys(self) -> set[tuple[str, int]]:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if not self.path.exists():
            return set()
        table = pq.read_table(self.path, columns=["source", "index", "error"])
        return set(row_keys(table.filter(pc.is_null(table.column("error")))))

    def add(self, table) -> None:
        """Take one batch of result rows (a pyarrow table of :func:`result_schema`)."""
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= self.part_rows or time.monotonic() - self._last_flush > self.part_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the rows taken so far as one part."""
        if not self._pending:
            return
        self.parts_dir.mkdir(exist_ok=True)
        while (part := self.parts_dir / f"part-{self._next_part:05d}.parquet").exists():
            self._next_part += 1
        write_parquet_atomically(part, self._pending, self.schema)
        self._pending, self._pending_rows, self._last_flush = [], 0, time.monotonic()

    def finish(self) -> Path:
        """Merge the output and the parts into the new output; returns its path."""
        self.flush()
        self._merge()
        return self.path

    def _merge(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = self.parts()
        if not parts and self.path.exists() and self.keep_old:
            return
        new = [pq.read_table(p) for p in parts]
        replaced = {k for t in new for k in row_keys(t)}

        def old_rows():
            if self.keep_old and self.path.exists():
                for batch in pq.ParquetFile(self.path).iter_batches(batch_size=4096):
                    table = pa.Table.from_batches([batch])
                    keep = [k not in replaced for k in row_keys(table)]
                    yield table.filter(pa.array(keep, pa.bool_()))

        write_parquet_atomically(self.path, itertools.chain(old_rows(), new), self.schema)
        self.keep_old = True
        shutil.rmtree(self.parts_dir, ignore_errors=True)


__all__ = ["ResultStore", "read_run", "write_parquet_atomically"]
