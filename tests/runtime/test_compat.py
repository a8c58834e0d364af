"""Python 3.12 f-strings rewritten as str.format calls compute the same strings on the same lines."""

from __future__ import annotations

import sys

import pytest

from auditor.discover import discover
from auditor.runtime.compat import backport_fstrings
from auditor.runtime.harness import _job_files

SCOPE = {"cat": "c", "names": ["b", "a"], "d": {"k": 3, "{": 4}, "w": 4, "x": 1.5}

# (f-string of Python 3.12 syntax, the string it computes)
CASES = [
    ('f"  {cat}: {", ".join(sorted(names))}"', "  c: a, b"),
    ("f\"{d[\"k\"]:>{w}}|{{lit}}|{d['{']}\"", "   3|{lit}|4"),
    ('f"{x = } {", ".join(names)}"', "x = 1.5 b, a"),
    ('f"{x=:.2f}{"!"}"', "x=1.50!"),
    ('f"{x = !s:>5}{""}"', "x =   1.5"),
    ("\"pre \" f\"{\"mid\"}\" ' post'", "pre mid post"),
    ('f"{f"{f"{cat}"}"}"', "c"),
    ("f'{\"\\n\".join(names)!r}'", "'b\\na'"),
    ('rf"\\d {"x"} {cat!s:^5}"', "\\d x   c  "),
    ('f"{names[0], names[1]}{""}"', "('b', 'a')"),
    ('(f"{"paren"}").upper()', "PAREN"),
    ('f"{"{"}"', "{"),
    ('f"{x!r:{"<"}6}"', "1.5   "),
]


@pytest.mark.parametrize(("expression", "expected"), CASES)
def test_rewritten_fstring_computes_the_same_string(expression, expected):
    result = backport_fstrings(f"value = {expression}\n")
    assert result is not None
    text, rewritten = result
    if sys.version_info < (3, 12):
        assert rewritten >= 1 and "format(" in text
    scope = dict(SCOPE)
    exec(compile(text, "<case>", "exec"), scope)  # the test's own code
    assert scope["value"] == expected


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="nothing to rewrite on Python 3.12")
def test_lines_stay_where_they_were():
    text = 'x = 1\nmsg = ("a"\n       f"{", ".join(["b"])}"\n       "c")\ny = 2\ndef f():\n    return f"{"z"}"\n'
    new, rewritten = backport_fstrings(text)
    assert rewritten == 2
    assert new.count("\n") == text.count("\n")
    assert new.splitlines()[4] == "y = 2" and new.splitlines()[5] == "def f():"
    scope: dict = {}
    exec(compile(new, "<case>", "exec"), scope)
    assert scope["msg"] == "abc" and scope["f"]() == "z"


def test_valid_fstrings_are_left_as_written_and_unparsable_text_is_refused():
    text = 'a = f"{1 + 1!r:>3} {\'x\'}"\n'
    assert backport_fstrings(text) == (text, 0)
    assert backport_fstrings("def f(:\n") is None


def test_spellings_libcst_would_reject_are_backported_too():
    """Minified code (#1850, #1877): no space before ``for`` after a parenthesized
    conditional, which libcst's node checks reject while Python accepts it, beside an f-string
    the rewrite visits. The copy is parsed and rewritten as the analyzer parses, and compiled;
    nothing raises."""
    text = ('def f():\n'
            '\tn=sum((min(a+b,m)-a)-(0 if a==0 else c)for a in starts);log(f"start tokens={n} rank={r}")\n'
            '\tlog(f"{", ".join(names)}")\n')
    out = backport_fstrings(text)
    if sys.version_info < (3, 12):
        assert out is not None and out[1] == 1
        assert out[0].splitlines()[:2] == text.splitlines()[:2]


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="nothing to rewrite on Python 3.12")
def test_the_sandbox_copy_is_rewritten_not_the_audited_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PGOLF_AUDIT_RUNTIME_PYTHON", raising=False)
    script = 'names = ["a"]\nprint(f"{", ".join(names)}")\n'
    (tmp_path / "train_gpt.py").write_text(script)
    (bundle,) = discover([tmp_path], tmp_path)
    files, run_as, _, _, adjustments = _job_files(bundle)
    assert (tmp_path / "train_gpt.py").read_text() == script
    assert b".format(" in files[run_as] and adjustments and "1 f-string" in adjustments[0]
    monkeypatch.setenv("PGOLF_AUDIT_RUNTIME_PYTHON", sys.executable)  # a 3.12 interpreter would run it as is
    files, run_as, _, _, adjustments = _job_files(bundle)
    assert files[run_as] == script.encode() and not adjustments
