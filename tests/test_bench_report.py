"""`make bench`'s report (benchmarks/report.py): the figures it is given, rendered into
docs/BENCHMARKS.md's generated section, with the goals' verdicts and the capacity model."""

from __future__ import annotations

from typing import Any

from benchmarks.report import BEGIN, END, perf_rate, render

PERF_LINE = ("100000 records sent, 4725.5 records/sec (4.61 MB/sec), 4535.96 ms avg latency, "
             "7336.00 ms max latency, 5363 ms 50th, 6731 ms 95th, 7212 ms 99th, "
             "7333 ms 99.9th.")


def figures(merge_rate: float) -> dict[str, Any]:
    latency = {"poll_seconds": 1, "rate": 20, "achieved_rate": 20.0, "edits": 10, "timed": 9,
               "p50_ms": 100, "p95_ms": 200, "p99_ms": 300, "max_ms": 400, "probe_ms": 20,
               "writes_made": {"helpdesk": 10, "crm": 0}, "final_values_present": 5,
               "final_values_expected": 5, "over_budget_429": 0, "budget_per_second": 150,
               "latencies_ms": [100, 200]}
    workers = [{"workers_per_role": k, "observations": 60_000, "records": 10_000,
                "partitions": 6, "seconds": 10.0 / k, "left_at_settled": 60_000,
                "observations_per_second": 6_000.0 * k,
                "cpu_seconds": {"route": 2.4, "merge": 4.2}, "peak_rss_mib": 180}
               for k in (1, 2, 3)]
    merge = {stream: {"raw_rate": 10_000.0, "route_rate": 20_000.0, "merge_rate": merge_rate,
                      "merge_raw": merge_rate / 10_000, "compiled": True,
                      "observations": 100_000, "merge_produced": 60_000}
             for stream in ("synced", "edits")}
    restart = [{"records": 100, "store": "memory", "observations": 300, "drain_seconds": 1.0,
                "working_peak_rss_mib": 60, "restart_ready_seconds": 1.0,
                "restart_peak_rss_mib": 50}]
    return {"latency": {"webhooks": latency, "polling": latency}, "restart": restart,
            "workers": workers, "merge": merge, "perf": perf_rate(PERF_LINE)}


def steps() -> list[dict[str, Any]]:
    names = ["latency webhooks", "latency polling", "restart", "workers", "merge synced",
             "merge edits", "perf"]
    return [{"name": n, "command": f"python -m {n}", "load_before": "1.0",
             "load_after": "2.0", "seconds": 1.0} for n in names]


MACHINE = {"cores": 2, "ram_gib": 8.0, "python": "3.11", "kafka": "4.1.2",
           "date": "2026-12-07 18:00 UTC", "commit": "abc", "bootstrap": "127.0.0.1:1"}


def test_the_section_states_the_ratios_of_both_streams_and_the_goals_verdicts() -> None:
    text = render("small", "make bench", MACHINE, figures(9_000.0), steps(), False)
    assert text.startswith(BEGIN) and text.endswith(END)
    assert "| synced | 4,726 records/s | 10,000 msg/s | 20,000 obs/s | 9,000 obs/s | 0.90 " \
           "| 1.90 |" in text
    assert "Goals: merge/raw met, merge/ProducerPerformance met" in text
    missed = render("small", "make bench", MACHINE, figures(3_000.0), steps(), False)
    assert "Goals: merge/raw missed, merge/ProducerPerformance missed" in missed


def test_the_capacity_model_comes_from_cpu_per_observation() -> None:
    text = render("small", "make bench", MACHINE, figures(9_000.0), steps(), False)
    # 2.4 s and 4.2 s of CPU for 60,000 observations: 40 and 70 µs an observation.
    assert "the route stage 40 µs and the merge stage 70 µs an observation" in text
    assert "~14,286/s of merging" in text
    assert "| per merge partition (one core) | ~4,762 | ~2,857 |" in text


def test_the_restart_table_has_the_clean_restart_and_the_goals_at_a_million() -> None:
    f = figures(9_000.0)
    f["restart"] = [{"records": 1_000_000, "store": "rocksdb", "made": "seeded",
                     "links": 2_000_000, "observations": 0, "drain_seconds": 0.1,
                     "working_peak_rss_mib": 300, "clean_restart_ready_seconds": 1.5,
                     "clean_restart_restoring_seconds": 0.5, "restart_ready_seconds": 70.0,
                     "restart_restoring_seconds": 59.0, "restart_peak_rss_mib": 1100}]
    text = render("full", "make bench", MACHINE, f, steps(), False)
    assert ("| 1,000,000 | rocksdb | seeded (2,000,000 links) | 0.1 s | 300 MiB | 1.50 s "
            "(0.50 s) | 70.00 s (59.00 s) | 1100 MiB |") in text
    assert "restart to ready after kill -9 (a full restore) took 70.0 s (goal under 60 s: " \
           "missed), peak RSS 1100 MiB (goal ≤ 1 GiB: missed)" in text
