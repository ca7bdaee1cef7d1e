"""Issue 11 target 5's bench code (bench/runner.py, the link request against its floor) on
synthetic inputs: the budget, the floor's parts, the hops read from the workers' JSON logs, the
in-app times from the web processes' metrics, the table rows. Times nothing it judges."""
import json
import math
from datetime import UTC, datetime

from bench import runner
from bench.stats import load_verdict
from services.common import events


def test_the_link_budget_is_two_floors_and_a_busy_machine_is_inconclusive():
    assert load_verdict("link_floor_ratio", 2.0, None) == "met"
    assert load_verdict("link_floor_ratio", 2.1, None) == "missed"
    assert load_verdict("link_floor_ratio", 2.1, {"other_load": 3.5, "cores": 2}) == "inconclusive"
    assert load_verdict("link_floor_ratio", math.nan, {"other_load": 3.5, "cores": 2}) == "n/a"


def test_the_floors_broker_hops_are_the_chains_events():
    # auth emits link.verified for invitations; invitations emits invitation.accepted for users
    assert "invitations" in events.CATALOGUE["link.verified"].consumers
    assert "auth" in events.CATALOGUE["link.verified"].producers
    assert "users" in events.CATALOGUE["invitation.accepted"].consumers
    assert runner.LINK_BROKER_HOPS == 2
    assert sum(runner.LINK_COMMITS.values()) == 6


def test_a_raw_verify_uses_auths_own_hasher():
    times = runner.argon_verify_times(2)
    assert len(times) == 2 and all(t > 0 for t in times)


def _line(at: float, message: str, cid: str) -> str:
    return json.dumps({"timestamp": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
                       "message": message, "correlation_id": cid})


def test_link_hops_are_read_per_correlation_id(tmp_path):
    from bench import chain
    t0 = 1_800_000_000.0
    (tmp_path / "auth-worker.log").write_text(_line(t0 + 0.040, "published link.verified id=1", "post-1"))
    (tmp_path / "invitations-worker.log").write_text("\n".join([
        _line(t0 + 0.055, "handled link.verified id=1 from invitations.link.verified", "post-1"),
        _line(t0 + 0.060, "published invitation.accepted id=2", "post-1")]))
    (tmp_path / "users-worker.log").write_text(_line(t0 + 0.075, "handled invitation.accepted id=2 from q", "post-1"))
    hops = chain.hop_times(tmp_path, {"post-1": t0}, runner.LINK_HOP_LINES)
    assert [round(v["p50_ms"]) for v in hops.values()] == [40, 55, 60, 75]


def test_in_app_time_per_endpoint_between_two_scrapes():
    before = {"auth POST auth.invitation_link": (1.0, 10.0)}
    after = {"auth POST auth.invitation_link": (1.45, 20.0), "users GET users.linking": (0.08, 10.0),
             "users GET users.firm_home": (0.5, 0.0)}
    got = runner.server_ms_between(before, after)
    assert round(got["auth POST auth.invitation_link"], 1) == 45.0
    assert round(got["users GET users.linking"], 1) == 8.0
    assert "users GET users.firm_home" not in got  # no request in between


def _figure(ratio: float, load: dict) -> dict:
    return {"n": 20, "errors": 0, "latency_ms": {"median": 50.0 * ratio / 2, "p99": 80.0},
            "floor_ms": 25.0, "argon2_verify_p50": 22.0, "broker_hops": 2, "kombu_round_trip_p50": 0.6,
            "commits": 6, "commits_ms": 1.8, "floor_ratio": ratio, "ratio_by_run": [ratio] * 3, "load": load,
            "hops_ms": {"auth relay published link.verified": {"p50_ms": 40.0, "n": 20}},
            "client_ms": {"post": 45.0, "linked_poll": 80.0, "home_get": 90.0, "polls": 2},
            "server_mean_ms": {"auth POST auth.invitation_link": 40.0}}


def test_rows_carry_the_floor_its_parts_and_the_verdict():
    quiet = {"other_load": 0.2, "cores": 2}
    rows = {r.name.strip(): r for r in runner.rows_of({"machine": {"cores": 2}, "link_floor": _figure(1.9, quiet)})}
    ratio = rows["link request p50 / floor (median of runs)"]
    assert (ratio.budget, ratio.status) == ("<= 2", "met")
    head = next(r for name, r in rows.items() if name.startswith("link request → new firm's home"))
    assert "argon2id 22.0" in head.value and "2 × kombu 0.60" in head.value and "6 commits" in head.value
    assert "POST answered 45" in rows["link hops p50 ms since the POST"].value
    missed = {r.name.strip(): r for r in runner.rows_of({"machine": {"cores": 2}, "link_floor": _figure(5.2, quiet)})}
    assert missed["link request p50 / floor (median of runs)"].status == "missed"
    busy = {r.name.strip(): r for r in runner.rows_of(
        {"machine": {"cores": 2}, "link_floor": _figure(5.2, {"other_load": 4.0, "cores": 2})})}
    assert busy["link request p50 / floor (median of runs)"].status == "inconclusive"
