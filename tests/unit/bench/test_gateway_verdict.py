"""``bench gateway``'s verdict: which goals hold, and the idle-cost line, from given measurements."""

from __future__ import annotations

from bench.gateway import SPACED_HIT, _idle_cost, _table, evaluate
from bench.stats import Measurement


def _m(label: str, rps: float, p50: float, p99: float, gateway_ms: float = 0.0) -> Measurement:
    n = int(rps * 10)
    cpu = {"triton": 0.0 if "hit" in label else 25.0, "gateway": gateway_ms, "load generator": 0.5}
    return Measurement(label, "resnet18", 1, n, n, 0, 10.0, rps, p50, p99, p50, cpu)


def _cell(miss_rps: float, miss_p50: float, hit_rps: float = 1200.0, hit_p99: float = 3.0) -> dict[str, Measurement]:
    return {
        "direct": _m("direct", 40.0, 25.0, 40.0, 0.3),
        "miss": _m("miss", miss_rps, miss_p50, 45.0, 4.0),
        "hit": _m("hit", hit_rps, 0.8, hit_p99, 0.9),
    }


def test_miss_goals_must_hold_at_every_concurrency_and_the_hit_goal_at_one() -> None:
    good = evaluate({1: _cell(38.0, 26.5), 8: _cell(37.0, 26.9, hit_rps=900.0, hit_p99=20.0)})
    assert good["met"] == {"miss_throughput": True, "added_p50": True, "hit": True, "hit_met_at_concurrency": [1]}
    assert good["per_concurrency"][1]["miss_over_direct"] == 38.0 / 40.0
    assert good["per_concurrency"][1]["added_p50_ms"] == 1.5

    one_slow = evaluate({1: _cell(38.0, 26.5), 8: _cell(34.0, 30.0)})  # 0.85 and +5 ms at 8 alone
    assert one_slow["met"]["miss_throughput"] is False and one_slow["met"]["added_p50"] is False
    assert one_slow["met"]["hit"] is True

    no_hit = evaluate({1: _cell(38.0, 26.5, hit_rps=990.0), 2: _cell(38.0, 26.5, hit_p99=5.5)})
    assert no_hit["met"]["hit"] is False  # one concurrency must meet both the rate and the p99


def test_the_spaced_hit_is_reported_apart_from_the_goals() -> None:
    cells = {1: {**_cell(38.0, 26.5), SPACED_HIT: _m(SPACED_HIT, 35.0, 1.1, 3.0, 2.6)}}
    verdict = evaluate(cells)
    assert verdict["per_concurrency"][1]["gateway_cpu_ms_per_spaced_hit"] == 2.6
    assert verdict["met"]["hit_met_at_concurrency"] == [1]  # the spaced hits' 35 req/s do not count
    line = _idle_cost(cells)
    assert "0.90 ms of CPU back to back and 2.60 ms" in line and "25 ms of idling" in line
    assert "0.30 ms of that is the idle gateway's own background work" in line  # direct's gateway CPU
    assert "| 1 | spaced hit |" in _table(cells, verdict)


def test_no_idle_line_without_metered_spaced_hits() -> None:
    assert _idle_cost({1: _cell(38.0, 26.5)}) == ""
    unmetered = {1: {**_cell(38.0, 26.5), SPACED_HIT: Measurement(SPACED_HIT, "m", 1, 5, 5, 0, 1.0, 5.0, 1, 1, 1)}}
    assert _idle_cost(unmetered) == ""
    client_only = {k: Measurement(k, "m", 1, 5, 5, 0, 1.0, 5.0, 1, 1, 1, {"load generator": 0.1})
                   for k in ("direct", "hit", SPACED_HIT)}  # fmt: skip
    assert _idle_cost({1: client_only}) == ""  # a meter without the stack: no gateway figures to compare
