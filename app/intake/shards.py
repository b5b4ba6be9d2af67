"""Intake shards: the Redis keys of one submission, by department, in one Redis Cluster slot.

`survey.intake_shards` (N) splits the intake stream by department code: shard = CRC-32 of the
code mod N. Every key of one submission carries its shard's hash tag `{iK}`: the one-per-person
done key, the stream, the scan memory of (person, department) and the drain flag. A cluster
stores keys with the same tag in one slot, so the record script touching all four stays atomic;
a single Redis ignores the tags. Each shard's stream has its own consumer group (`drain`) and
its own drain jobs, so N shards drain N times in parallel on N workers.
"""

from __future__ import annotations

import zlib

LEGACY_STREAM = "wx:intake"  # the one stream before shards: still drained while it holds entries


def shard_of(department_code: str, shards: int) -> int:
    return zlib.crc32(department_code.encode()) % shards if shards > 1 else 0


def tag(shard: int) -> str:
    return f"{{i{shard}}}"


def stream_key(shard: int) -> str:
    return f"wx:intake:{tag(shard)}"


def drain_flag_key(shard: int) -> str:
    return f"wx:intake:drain-wanted:{tag(shard)}"


def done_key(shard: int, survey_id: int, department_id: int, rkey: str) -> str:
    return f"wx:done:{tag(shard)}:{survey_id}:{department_id}:{rkey}"


def scan_key(shard: int, rkey: str, department_code: str) -> str:
    return f"wx:scan:{tag(shard)}:{rkey}:{department_code}"


def all_shards(shards: int) -> range:
    return range(max(1, shards))
