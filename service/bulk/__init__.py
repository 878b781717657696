"""Bulk classification of stored comments (``danmaku-serve classify-file``), with the service's own router.

- ``inputs``: find the input files (Parquet, CSV, JSONL; gzip for the text formats) and read them in chunks;
- ``shards``: which shard owns which chunk (a deterministic partition of the input);
- ``output``: one Parquet part per chunk, written atomically; the run record; the shard manifest;
- ``runner``: classify a shard's chunks through ``service.runtime.Runtime`` and write them, skipping finished parts.
"""
