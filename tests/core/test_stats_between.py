"""archnest.stats_between: a one-shot Engine stats document, the CPU share measured
between two of the collector's samples (pure)."""

from __future__ import annotations

from typing import Any

from archnest import stats_between
from archnest.normalise import cpu_counters


def _doc(total: int, system: int, **extra: Any) -> dict[str, Any]:
    return {
        "pids_stats": {"current": 2},
        "cpu_stats": {
            "cpu_usage": {"total_usage": total},
            "system_cpu_usage": system,
            "online_cpus": 4,
        },
        "memory_stats": {"usage": 1000, "limit": 4000, "stats": {"inactive_file": 100}},
        **extra,
    }


def test_cpu_share_since_the_previous_sample() -> None:
    first = _doc(5_000_000_000, 900_000_000_000)
    second = _doc(5_500_000_000, 902_000_000_000)  # 0.5 s of CPU in 2 s of 4 CPUs' time
    # Without a previous sample the share is unknown, not the lifetime average.
    alone = stats_between(first, None)
    assert alone is not None and alone.cpu_percent is None and alone.mem_usage_bytes == 900
    stats = stats_between(second, cpu_counters(first))
    assert stats is not None and stats.cpu_percent == 100.0  # 0.5 / 2 x 4 CPUs x 100
    assert (stats.mem_usage_bytes, stats.mem_limit_bytes, stats.pids) == (900, 4000, 2)


def test_a_document_with_the_engines_own_second_reading_is_read_as_docker_stats() -> None:
    # An engine older than API 1.41 ignores one-shot and fills precpu_stats itself.
    doc = _doc(
        2_000_000_000,
        10_000_000_000,
        precpu_stats={
            "cpu_usage": {"total_usage": 1_000_000_000},
            "system_cpu_usage": 6_000_000_000,
        },
    )
    stats = stats_between(doc, (0, 0))
    assert stats is not None and stats.cpu_percent == 100.0  # 1 / 4 x 4 x 100
    assert cpu_counters({"cpu_stats": {}}) is None
