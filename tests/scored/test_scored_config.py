"""The scored configuration decides whether a finding's path ran in the run behind the claim."""

from __future__ import annotations

import base64
import lzma

import pytest

from auditor.discover import discover
from auditor.engine import AuditOptions, audit
from auditor.evidence import Evidence
from auditor.findings import Severity, Status

from .fixtures import ngram_folder, renamed, slot_folder, world_folder

CASES = {
    # name: (builder, the rule whose finding sits on the guarded path, the status it must get)
    "ngram-ran": (lambda root: ngram_folder(root, ran=True), "PG101", Status.ACTIVE),
    "ngram-off": (lambda root: ngram_folder(root, ran=False), "PG101", Status.INACTIVE),
    "slot-ran": (lambda root: slot_folder(root, ran=True), "PG103", Status.ACTIVE),
    "slot-off": (lambda root: slot_folder(root, ran=False), "PG103", Status.INACTIVE),
    "world-8": (lambda root: world_folder(root, 8), "PG101", Status.ACTIVE),
    "world-1": (lambda root: world_folder(root, 1), "PG101", Status.INACTIVE),
}


def _finding(folder, code):
    findings = [f for f in audit([folder], AuditOptions(select=["PG1"])).findings if f.code == code]
    assert len(findings) == 1, [f.message for f in findings]
    return findings[0]


@pytest.mark.parametrize("rename", [False, True], ids=["as-written", "renamed"])
@pytest.mark.parametrize("name", list(CASES))
def test_status_follows_the_scored_run(name, rename, tmp_path):
    build, code, status = CASES[name]
    folder = build(tmp_path)
    if rename:
        renamed(folder)
    finding = _finding(folder, code)
    assert finding.status is status, finding.status_reason or finding.evidence
    if status is Status.ACTIVE:
        (proof,) = finding.evidence["ran_in_scored_run"][:1]
        assert "train_seed1.log:" in proof and "printed by" in proof
    else:
        assert "scored run" in finding.status_reason or "train_seed1.log" in finding.status_reason


def test_a_log_line_proves_the_block_even_when_the_default_is_off(tmp_path):
    finding = _finding(ngram_folder(tmp_path, ran=True), "PG101")
    assert "ngram_eval:order=7" in finding.evidence["ran_in_scored_run"][0]


def test_an_ablation_command_in_the_readme_does_not_switch_on_what_the_logs_show_off(tmp_path):
    finding = _finding(slot_folder(tmp_path, ran=False), "PG103")
    assert "slot:starting steps=" in finding.status_reason  # the line the SLOT branch would print


def test_code_that_ran_for_another_stage_than_the_claimed_one_is_a_warning(tmp_path):
    on_path = _finding(ngram_folder(tmp_path / "a", ran=True), "PG101")
    assert on_path.severity is Severity.ERROR and "not_on_scored_path" not in on_path.evidence
    finding = _finding(ngram_folder(tmp_path / "b", ran=True, claim_ngram=False), "PG101")
    assert finding.status is Status.ACTIVE and finding.severity is Severity.WARNING
    reason = finding.evidence["not_on_scored_path"]
    assert "final_int6_sliding_window_exact" in reason and "ngram7" in reason and "train_gpt.py:26" in reason


def test_a_claim_printed_inside_its_scoring_function_starts_the_path_there(tmp_path):
    # the plain stage computes and prints its own score line: the path starts in eval_val
    folder = ngram_folder(tmp_path, ran=True, claim_ngram=False)
    script = folder / "train_gpt.py"
    text = script.read_text()
    text = text.replace(
        "def eval_val(model, val_tokens):\n    return 2.0, 1.2\n",
        "def eval_val(model, val_tokens):\n    loss = 2.0\n    bpb = loss * 0.6\n"
        '    log0(f"final_int6_sliding_window_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")\n'
        "    return loss, bpb\n",
    )
    text = text.replace('    log0(f"final_int6_sliding_window_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")\n    if', "    if")
    script.write_text(text)
    finding = _finding(folder, "PG101")
    assert finding.status is Status.ACTIVE and finding.severity is Severity.WARNING
    assert "final_int6_sliding_window_exact" in finding.evidence["not_on_scored_path"]


def test_a_stage_that_ran_before_the_claimed_one_stays_on_its_path(tmp_path):
    # the n-gram stage runs first: it could have changed what the claimed stage then uses
    folder = ngram_folder(tmp_path, ran=True, claim_ngram=False)
    script = folder / "train_gpt.py"
    lines = script.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "loss, bpb = eval_val" in line)
    plain = lines[start:start + 2]  # the plain stage: its eval and its score line
    rest = lines[:start] + lines[start + 2:]
    after = next(i for i, line in enumerate(rest) if "_ngram{" in line) + 1
    script.write_text("".join(rest[:after] + plain + rest[after:]))
    for log in folder.glob("train_seed*.log"):
        text = log.read_text().splitlines()
        claimed = next(line for line in text if line.startswith("final_int6_sliding_window_exact"))
        log.write_text("\n".join([line for line in text if line != claimed] + [claimed]) + "\n")
    finding = _finding(folder, "PG101")
    assert finding.status is Status.ACTIVE and finding.severity is Severity.ERROR
    assert "not_on_scored_path" not in finding.evidence


def test_the_world_size_comes_from_the_run_s_log(tmp_path):
    finding = _finding(world_folder(tmp_path, 1), "PG101")
    assert "WORLD_SIZE=1 in" in finding.status_reason and "train_seed1.log:" in finding.status_reason


def test_printed_values_are_settings_with_their_line(tmp_path):
    evidence = Evidence(discover([ngram_folder(tmp_path, ran=True)])[0])
    config = evidence.program.configs[id(evidence.program.indexes[0])]
    found = evidence.scored.overrides(config)
    assert found["NGRAM_EVAL_ORDER"].value == "7"
    assert found["NGRAM_EVAL_ORDER"].origin.endswith("train_seed1.log:4")


def test_the_report_names_the_stage_and_the_statement_that_printed_it(tmp_path):
    report = audit([ngram_folder(tmp_path, ran=True)], AuditOptions(select=["PG3"])).submissions[0]
    (first, _) = report.facts["scored_runs"]
    assert first["stage"].startswith("final_int6_sliding_window_ngram7_exact")
    assert first["stage_printed_by"].endswith("train_gpt.py:30")


def test_a_wrapped_script_is_matched_through_its_decoded_payload(tmp_path):
    folder = ngram_folder(tmp_path, ran=True)
    script = folder / "train_gpt.py"
    blob = base64.b85encode(lzma.compress(script.read_bytes())).decode()
    script.write_text(f"import lzma as L,base64 as B\nexec(L.decompress(B.b85decode({blob!r})))\n")
    finding = _finding(folder, "PG101")
    assert finding.status is Status.ACTIVE and finding.location.decoded_from is not None


ROUTES = '''\
import os

def log0(msg, console=True):
    if console:
        print(msg)

def main():
    flag = int(os.environ.get("FLAG_X", "1"))
    log0(f"final_int6_sliding_window_exact val_loss:{2.0:.8f} val_bpb:{1.1:.8f}")
    if flag:
        log0(f"details of the extra pass {flag}", console=False)
        x = 1
    if flag:
        log0(f"details of the other pass {flag}")
        y = 2

main()
'''


def test_only_a_call_that_writes_to_these_logs_can_be_missing_from_them(tmp_path):
    folder = tmp_path / "routes"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(ROUTES)
    (folder / "train_seed1.log").write_text("final_int6_sliding_window_exact val_loss:2.00000000 val_bpb:1.10000000\n")
    evidence = Evidence(discover([folder])[0])
    index = evidence.index(evidence.bundle.main_source)
    by_line = {index.stmt_position(s)[0]: s for scope in index.scopes for s in scope.stmts}
    assert evidence.scored.guard_failed(by_line[12], 0) is None  # its printer writes elsewhere
    assert evidence.scored.guard_failed(by_line[15], 0).line == 14  # log0 writes here; the line is not


def test_a_summary_appended_to_the_log_is_traced_to_the_line_the_code_printed(tmp_path):
    folder = ngram_folder(tmp_path, ran=True)
    for log in folder.glob("train_seed*.log"):
        text = log.read_text()
        value = text.rsplit("val_bpb:", 1)[1].split()[0]
        log.write_text(text + f"---\nval_bpb:          {value}\nvalid:            true\n")
    report = audit([folder], AuditOptions(select=["PG3"])).submissions[0]
    (first, _) = report.facts["scored_runs"]
    assert first["stage"].startswith("final_int6_sliding_window_ngram7_exact"), first["stage"]
    assert first["stage_printed_by"].endswith("train_gpt.py:30")


RESCORE = '''\
import os
import torch
import torch.nn.functional as F

class Hyperparameters:
    ttt_epochs = int(os.environ.get("TTT_EPOCHS", 1))

def ttt_eval(args, model, opt, val, n, chunk):
    print(f"ttt:start epochs={args.ttt_epochs}")
    for epoch in range(args.ttt_epochs):
        loss_sum = 0.0
        for s in range(0, n, chunk):
            x, y = val[s:s + chunk - 1], val[s + 1:s + chunk]
            with torch.no_grad():
                loss_sum += F.cross_entropy(model(x), y, reduction="sum")
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return loss_sum

def main():
    args = Hyperparameters()
    val = torch.load("fineweb_val_000000.pt")
    loss = ttt_eval(args, None, None, val, 4096, 1024)
    print(f"final_ttt val_loss:{loss:.8f} val_bpb:{loss * 0.6:.8f}")

if __name__ == "__main__":
    main()
'''


def test_a_pass_count_is_the_scored_run_s_not_the_default(tmp_path):
    # one epoch by default (nothing rescored), three in the run the logs show
    folder = tmp_path / "rescore"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(RESCORE)
    (folder / "train_seed1.log").write_text("ttt:start epochs=3\nfinal_ttt val_loss:2.00000000 val_bpb:1.20000000\n")
    (folder / "submission.json").write_text('{"val_bpb": 1.2, "seeds": [1], "track": "track_10min_16mb"}')
    finding = _finding(folder, "PG113")
    assert finding.severity is Severity.ERROR and "runs 3 times" in finding.message


BYTE_MIX = '''\
import math
import torch
import torch.nn.functional as F

def byte_mix(targets, nll, piece_bytes, ppm_logp, lam=0.9):
    total, t = 0.0, 0
    for i in range(len(targets)):
        pb = piece_bytes[int(targets[i])]
        share = -float(nll[i]) / len(pb)
        for b in pb:
            a, o = math.log(lam) + share, math.log(1 - lam) + ppm_logp[t]
            total -= max(a, o) + math.log1p(math.exp(-abs(a - o)))
            t += 1
    print(f"ppm_mix mix_bpb={total / t / math.log(2):.6f}")

def eval_val(model, val_tokens, piece_bytes, base_bytes_lut, ppm_logp):
    x, y = val_tokens[:-1], val_tokens[1:]
    with torch.no_grad():
        nll = F.cross_entropy(model(x), y, reduction="none")
    byte_mix(y, nll, piece_bytes, ppm_logp)
    return nll.mean().item(), nll.sum().item() / math.log(2) / base_bytes_lut[y].sum().item()

def main():
    loss, bpb = eval_val(None, torch.load("fineweb_val_000000.pt"), None, None, None)
    print(f"final_int6_roundtrip val_loss:{loss:.8f} val_bpb:{bpb:.8f}")

if __name__ == "__main__":
    main()
'''


@pytest.mark.parametrize(("claim", "severity"), [(1.067, Severity.WARNING), (0.861, Severity.ERROR)])
def test_a_byte_mixture_whose_result_is_dropped_is_not_the_claim(tmp_path, claim, severity):
    # the mixture runs and logs its figure; the claim is the token-level line, printed elsewhere
    folder = tmp_path / f"mix{claim}"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(BYTE_MIX)
    (folder / "train_seed1.log").write_text(
        "ppm_mix mix_bpb=0.861000\nfinal_int6_roundtrip val_loss:2.50000000 val_bpb:1.06700000\n")
    (folder / "submission.json").write_text(f'{{"val_bpb": {claim}, "seeds": [1], "track": "track_10min_16mb"}}')
    finding = _finding(folder, "PG118")
    assert finding.severity is severity, finding.message
