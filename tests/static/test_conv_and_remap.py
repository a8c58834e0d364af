"""PG111 and PG112 beyond their embedded cases: severities and what decides them."""

from __future__ import annotations

from auditor.engine import AuditOptions, audit


def _findings(tmp_path, code, text):
    path = tmp_path / "train_gpt.py"
    path.write_text(text)
    return [f for f in audit([path], AuditOptions(select=[code])).findings if f.code == code]


CONV = """
import torch.nn as nn
class Mix(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv = nn.Conv1d(d, d, 7, padding=3, groups=d)
    def forward(self, x):
        return self.conv({arg})
"""


def test_symmetric_conv_over_the_sequence_is_an_error(tmp_path):
    (finding,) = _findings(tmp_path, "PG111", CONV.format(arg="x.transpose(1, 2)"))
    assert finding.severity.value == "error" and finding.location.line == 6
    assert "pads 3 (kernel 7)" in finding.message


def test_symmetric_conv_without_a_seen_sequence_axis_is_a_warning(tmp_path):
    # the input may already be channels-first (an audio-style stem): not decided statically
    (finding,) = _findings(tmp_path, "PG111", CONV.format(arg="x"))
    assert finding.severity.value == "warning"


def test_even_kernel_with_half_padding_is_not_reported(tmp_path):
    # kernel 4, padding 2: the output is T + 1 long; which end is kept decides, not the padding
    text = CONV.replace("7, padding=3", "4, padding=2").format(arg="x.transpose(1, 2)")
    assert _findings(tmp_path, "PG111", text) == []


def test_remap_is_a_warning_at_the_loss(tmp_path):
    text = (
        "import torch.nn.functional as F\n"
        "def ev(logits, y, V):\n"
        "    z = y.view(-1)\n"
        "    z = z % V\n"
        "    return F.cross_entropy(logits, z)\n"
    )
    (finding,) = _findings(tmp_path, "PG112", text)
    assert finding.severity.value == "warning" and finding.location.line == 5
    assert "z % V" in finding.message


def test_an_unknown_kernel_with_half_or_same_padding_is_a_warning(tmp_path):
    text = (
        "import torch.nn as nn\n"
        "from settings import WIDTH\n"
        "class Mix(nn.Module):\n"
        "    def __init__(self, d):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv1d(d, d, WIDTH, padding=WIDTH // 2, groups=d)\n"
        "    def forward(self, x):\n"
        "        return self.conv(x.transpose(1, 2))\n"
    )
    (finding,) = _findings(tmp_path, "PG111", text)
    assert finding.severity.value == "warning" and "kernel size" in finding.message
