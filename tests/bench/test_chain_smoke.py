"""The invitation chain's bench code (bench/chain.py) on synthetic inputs: budgets, the hops read
from the workers' JSON logs, the table rows. Times nothing."""
import json
import math
from datetime import UTC, datetime

from bench import chain
from bench.stats import load_verdict


def test_verdicts_of_the_chain_budgets():
    assert load_verdict("chain_one_floor_ratio", 2.9) == "met"
    assert load_verdict("chain_one_floor_ratio", 3.1) == "missed"
    assert load_verdict("chain_burst_rate_ratio", 0.5) == "met"
    assert load_verdict("chain_scaling_4", 3.0) == "missed"
    assert load_verdict("chain_burst_p99_s", math.nan) == "n/a"


def _line(at: float, message: str, cid: str) -> str:
    return json.dumps({"timestamp": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
                       "message": message, "correlation_id": cid})


def test_hops_are_read_per_correlation_id_from_the_worker_logs(tmp_path):
    t0 = 1_800_000_000.0
    (tmp_path / "users-worker.log").write_text("\n".join([
        "not json", _line(t0 + 0.010, "published client_user.access_activated id=1", "a"),
        _line(t0 + 0.500, "published client_user.access_activated id=9", "other")]))
    (tmp_path / "invitations-worker.log").write_text("\n".join([
        _line(t0 + 0.030, "handled client_user.access_activated id=1 from q", "a"),
        _line(t0 + 0.040, "published notification.email_requested id=2", "a")]))
    (tmp_path / "notifier-worker-2.log").write_text(_line(t0 + 0.090, "e-mail invitation:x (invitation) sent", "a"))
    hops = chain.hop_times(tmp_path, {"a": t0})
    assert round(hops["users relay published"]["p50_ms"]) == 10
    assert round(hops["invitations relay published"]["p50_ms"]) == 40
    assert round(hops["notifier: SMTP accepted"]["p50_ms"]) == 90
    assert hops["notifier consumed + committed"]["n"] == 0
    spans = chain.hop_spans(tmp_path, t0)
    assert spans["users relay published"]["n"] == 2 and round(spans["users relay published"]["last_s"], 1) == 0.5


def test_rows_carry_budgets_and_verdicts():
    results = {"chain": {
        "one": {"n": 20, "latency_ms": {"median": 30.0, "p99": 40.0}, "floor_ms": 12.0, "floor_ratio": 2.5,
                "floor_parts_ms": {"kombu_round_trip_p50": 1.0, "commit_p50": 1.0, "commits": 5, "smtp_send_p50": 4.0},
                "hops_ms": {"users relay published": {"p50_ms": 5.0, "n": 20}}},
        "burst": {"activated": 1000, "delivered": 1000, "smtp_connections": 3, "per_s": 100.0, "raw_smtp_per_s": 1000.0,
                  "rate_ratio": 0.1, "latency_s": {"median": 1.0, "p99": 4.0}, "hops": {}},
        "scaling": {"smtp_delay_ms": 50.0, "by_workers": {"1": {"per_s": 10.0}, "2": {"per_s": 19.0},
                                                          "4": {"per_s": 30.0}},
                    "one_message_id_per_person": True, "ratio_2": 1.9, "ratio_4": 3.0}}}
    rows = {r.name.strip(): r for r in chain.rows_of(results)}
    assert rows["one invitation p50 / floor"].status == "met"
    assert rows["burst rate / raw smtplib rate"].status == "missed"
    assert rows["burst latency s (activation commit → e-mail)"].status == "met"
    assert rows["2 workers / 1 worker"].status == "met" and rows["4 workers / 1 worker"].status == "missed"


def test_a_busy_machine_makes_a_chain_verdict_inconclusive():
    busy = {"other_load": 9.0, "cores": 2}
    quiet = {"other_load": 0.5, "cores": 2}
    assert load_verdict("chain_scaling_2", 2.0, busy) == "inconclusive"
    assert load_verdict("chain_scaling_2", 2.0, quiet) == "met"
    assert load_verdict("chain_scaling_2", math.nan, busy) == "n/a"
