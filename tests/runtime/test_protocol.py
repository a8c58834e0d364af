"""The result channel: only well-formed messages with the run's nonce count; anything else is distrusted."""

from __future__ import annotations

import json

from auditor.runtime.harness import interpret, reduce_error
from auditor.runtime.protocol import (
    DriverResult,
    ErrorInfo,
    Job,
    PassRecord,
    ProbeRow,
    RunRecord,
    ScorerRecord,
    message,
    read_messages,
)
from auditor.runtime.sandbox import WORKDIR, ChildResult

NONCE = "a" * 32


def passing() -> DriverResult:
    probes = [ProbeRow(p, "pass", "ok", {"delta": 0.0}, "eval_val") for p in ("determinism", "future", "substitution")]
    return DriverResult(
        phase="done", pipeline_ran=True,
        runs=[RunRecord("baseline", 1.0, None, [PassRecord("eval_val", 0, 0, 0.1, [2.5], True, scored=10)])],
        scorers=[ScorerRecord("eval_val", final=True, probes=probes)],
    )


def test_a_hashed_table_raised_above_its_scaled_size_clears_nothing():
    # the script refused the scaled size; the run went on with the least size it accepts, so
    # its tables collide less than they would at full load and a pass speaks for none of them
    source = "counts = np.zeros(BUCKETS)\nnp.add.at(counts, hash_of(ctx) % BUCKETS, 1)\n"
    scaled = passing()
    scaled.knobs = {"NGRAM_BUCKETS": "256"}
    assert interpret(ChildResult(scaled, 0, 1.0), source).status == "pass"
    above = passing()
    above.knobs = {"NGRAM_BUCKETS": "1024"}
    above.tables_above_scale = ["NGRAM_BUCKETS"]
    result = interpret(ChildResult(above, 0, 1.0), source)
    assert result.status == "inconclusive"
    assert "hashed count tables" in result.reasons[0]


def test_a_result_survives_the_round_trip():
    result = passing()
    channel = read_messages(message(NONCE, 0, False, result) + message(NONCE, 1, True, result), NONCE)
    assert not channel.problem and channel.final == result and channel.latest == result
    job = Job(script="a.py", file="a.py", nonce=NONCE, result_fd=3, input="/in", settings={"vocab": 64})
    assert Job.from_json(job.to_json()) == job


def test_the_parent_accepts_only_messages_with_the_run_nonce():
    forged = message("b" * 32, 0, True, passing())
    channel = read_messages(forged, NONCE)
    assert channel.final is None and "nonce" in channel.problem


def test_anything_unexpected_distrusts_the_whole_channel():
    good = message(NONCE, 0, False, passing())
    cases = {
        "after the final": message(NONCE, 0, True, passing()) + message(NONCE, 1, True, passing()),
        "out of sequence": good + message(NONCE, 0, True, passing()),
        "not JSON": good + b"garbage\n",
        "unexpected field": good + json.dumps({"nonce": NONCE, "seq": 1, "final": True,
                                               "result": {**passing().to_dict(), "verdict": "pass"}}).encode() + b"\n",
        "expected bool": good + json.dumps({"nonce": NONCE, "seq": 1, "final": True,
                                            "result": {**passing().to_dict(), "pipeline_ran": "yes"}}).encode() + b"\n",
        "NaN": good + good.replace(b'"seq": 0', b'"seq": NaN'),
    }
    for name, data in cases.items():
        channel = read_messages(data, NONCE)
        assert channel.final is None and channel.latest is None and channel.problem, name
    assert "more than" in read_messages(good, NONCE, truncated=True).problem


def test_an_unfinished_last_message_is_dropped():
    data = message(NONCE, 0, False, passing()) + message(NONCE, 1, True, passing())[:-40]
    channel = read_messages(data, NONCE)
    assert not channel.problem and channel.final is None and channel.latest == passing()


def test_without_a_final_message_there_is_no_pass():
    child = ChildResult(None, 0, 1.0, latest=passing(), problem="the harness process ended (exit 0) without a result")
    out = interpret(child)
    assert out.status == "inconclusive" and "without a result" in out.reasons[0]
    assert interpret(ChildResult(passing(), 0, 1.0)).status == "pass"


def test_an_unknown_probe_status_is_inconclusive():
    result = passing()
    result.scorers[0].probes[0].status = "PASS!"
    assert interpret(ChildResult(result, 0, 1.0)).status == "inconclusive"


def test_errors_of_the_child_are_reduced_before_a_report_shows_them():
    # what a file outside held cannot be told from text; the sandbox keeps such files out of reach
    # (tests/runtime/test_hostile.py), and the report keeps only a short printable message
    shadow = ErrorInfo(type="ValueError", message="cannot parse /root/.ssh/id_rsa\x1b[2J" + "x" * 500, line=12,
                       code="raise ValueError(s)", in_submission=True)
    out = reduce_error(shadow)
    assert "/root/.ssh" not in out.message and "\x1b" not in out.message and len(out.message) <= 200
    assert out.line == 12 and out.type == "ValueError"
    outside = reduce_error(ErrorInfo(type="<script>", message="x", line=7, code="import os", in_submission=False))
    assert outside.type == "Error" and outside.line is None and outside.code == ""
    inside = reduce_error(ErrorInfo(type="FileNotFoundError", message=f"no file {WORKDIR}/records/x/tok.model"))
    assert "no file records/x/tok.model" == inside.message


def test_text_of_the_child_is_bounded_and_loses_outside_paths():
    result = passing()
    result.scorers[0].probes[0].detail = "the replay raised OSError: cannot open /home/me/.netrc\x07" + "y" * 5000
    (row, *_) = interpret(ChildResult(result, 0, 1.0)).rows
    assert "/home/me" not in row.detail and "\x07" not in row.detail and len(row.detail) <= 400


def test_a_process_that_outlived_the_sandbox_makes_the_run_inconclusive():
    out = interpret(ChildResult(passing(), 0, 1.0, survivors=1))
    assert out.status == "inconclusive" and "outlived" in out.reasons[0]
