"""Static unpacking of self-extracting wrappers: every codec, nesting, limits, and bombs (PG904)."""

from __future__ import annotations

import base64
import bz2
import gzip
import lzma
import time
import zlib

import brotli
import pytest

from auditor.engine import AuditOptions, audit
from auditor.unpack import MAX_DEPTH, MAX_LAYER_BYTES, unpack

from .conftest import FIXTURES

PAYLOAD = "import os\nx = os.environ.get('X')\nprint(x)\n"


def _wrap(expr: str, imports: str = "import lzma, zlib, gzip, bz2, base64, binascii, codecs, brotli") -> str:
    return f"{imports}\nexec({expr})\n"


CODEC_CASES = {
    "lzma+b85": (f"lzma.decompress(base64.b85decode({base64.b85encode(lzma.compress(PAYLOAD.encode()))!r}))", ("b85", "lzma")),
    "lzma raw": (
        "lzma.decompress(base64.b85decode({!r}), format=lzma.FORMAT_RAW, filters=[{{'id': lzma.FILTER_LZMA2}}])".format(
            base64.b85encode(lzma.compress(PAYLOAD.encode(), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]))
        ),
        ("b85", "lzma"),
    ),
    "zlib+b64": (f"zlib.decompress(base64.b64decode({base64.b64encode(zlib.compress(PAYLOAD.encode()))!r}))", ("b64", "zlib")),
    "gzip+a85": (f"gzip.decompress(base64.a85decode({base64.a85encode(gzip.compress(PAYLOAD.encode()))!r}))", ("a85", "gzip")),
    "bz2+b32": (f"bz2.decompress(base64.b32decode({base64.b32encode(bz2.compress(PAYLOAD.encode()))!r}))", ("b32", "bz2")),
    "brotli+b16": (f"brotli.decompress(base64.b16decode({base64.b16encode(brotli.compress(PAYLOAD.encode()))!r}))", ("b16", "brotli")),
    "hex": (f"bytes.fromhex({PAYLOAD.encode().hex()!r}).decode()", ("hex",)),
    "codecs base64": (f"codecs.decode({base64.b64encode(PAYLOAD.encode())!r}, 'base64')", ("codecs",)),
    "compile": (f"compile(zlib.decompress(base64.b64decode({base64.b64encode(zlib.compress(PAYLOAD.encode()))!r})), 'x', 'exec')", ("b64", "zlib")),
    "__import__": (
        f"__import__('zlib').decompress(__import__('base64').b64decode({base64.b64encode(zlib.compress(PAYLOAD.encode()))!r}))",
        ("b64", "zlib"),
    ),
}


@pytest.mark.parametrize("name", CODEC_CASES)
def test_every_codec_decodes(name):
    expr, layers = CODEC_CASES[name]
    result = unpack(_wrap(expr), "train_gpt.py")
    assert not result.failures, result.failures
    assert [p.text for p in result.payloads] == [PAYLOAD]
    assert result.payloads[0].origin.layers == layers
    assert result.payloads[0].origin.line == 2
    assert result.decoded_exec_lines == {2}


def test_data_through_a_module_level_name_and_concatenation():
    blob = base64.b64encode(zlib.compress(PAYLOAD.encode())).decode()
    half = len(blob) // 2
    text = f"import zlib as z, base64 as b\nA = {blob[:half]!r}\nB = {blob[half:]!r}\nexec(z.decompress(b.b64decode(A + B)))\n"
    result = unpack(text, "w.py")
    assert [p.text for p in result.payloads] == [PAYLOAD]
    assert result.payloads[0].origin.line == 4


def test_a_literal_cleaned_before_decoding_is_decoded():
    blob = base64.b85encode(lzma.compress(PAYLOAD.encode())).decode()
    wrapped = "\n".join(blob[i:i + 40] for i in range(0, len(blob), 40))
    text = f'import lzma, base64\n_b = b"""\n{wrapped}\n"""\nexec(lzma.decompress(base64.b85decode(_b.replace(b"\\n", b""))).decode("utf-8"))\n'
    assert [p.text for p in unpack(text, "w.py").payloads] == [PAYLOAD]
    stripped = f'import lzma, base64\nexec(lzma.decompress(base64.b85decode({(" " + blob + chr(10))!r}.strip())))\n'
    assert [p.text for p in unpack(stripped, "w.py").payloads] == [PAYLOAD]


def test_a_replace_that_would_grow_a_literal_past_the_limit_is_refused():
    text = 'import zlib\nexec(zlib.decompress(("a" * 1).replace("a", "b")))\n'
    assert not unpack(text, "w.py").payloads  # a product is not a literal: nothing decoded
    bomb = f'import zlib\nexec(zlib.decompress({"a" * 1000!r}.replace("a", {"b" * 100000!r})))\n'
    result = unpack(bomb, "w.py")
    assert not result.payloads and "exceeds the decoding limit" in result.failures[0].reason


def test_compile_with_a_computed_file_name_and_the_source_in_a_variable():
    blob = base64.b85encode(lzma.compress(PAYLOAD.encode())).decode()
    text = (
        "import lzma as L, base64 as B, linecache as C\n"
        f"S = L.decompress(B.b85decode({blob!r})).decode()\n"
        "F = __file__ + '.__decompressed__.py'\n"
        "C.cache[F] = (len(S), None, S.splitlines(True), F)\n"
        "exec(compile(S, F, 'exec'))\n"
    )
    result = unpack(text, "w.py")
    assert [p.text for p in result.payloads] == [PAYLOAD]
    assert result.payloads[0].origin.line == 5


def test_committed_wrapper_fixtures_decode_to_their_sources():
    for name in ("lzma_b85", "nested"):
        wrapper = (FIXTURES / "wrappers" / name / "train_gpt.py").read_text()
        source = (FIXTURES / "wrappers" / "src" / f"{name}.py").read_text()
        result = unpack(wrapper, f"{name}/train_gpt.py")
        assert not result.failures
        assert result.payloads[-1].text == source


def test_nested_wrappers_keep_the_outer_line_and_all_layers():
    wrapper = (FIXTURES / "wrappers" / "nested" / "train_gpt.py").read_text()
    result = unpack(wrapper, "nested/train_gpt.py")
    assert [p.depth for p in result.payloads] == [1, 2]
    inner = result.payloads[1]
    assert inner.origin.line == 3  # the exec line of the file on disk
    assert inner.origin.layers == ("a85", "bz2", "b64", "zlib")
    assert result.payloads[0].decoded_exec_lines == {2}


def test_finding_inside_a_wrapper_points_at_decoded_and_wrapper_lines(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    report = audit(["fixtures/wrappers/lzma_b85"], AuditOptions(select=["PG109"]))
    (finding,) = [f for f in report.findings if f.code == "PG109"]
    source = (FIXTURES / "wrappers" / "src" / "lzma_b85.py").read_text().splitlines()
    decoded_line = next(i for i, line in enumerate(source, 1) if "urlopen(url)" in line)
    assert finding.location.path == "fixtures/wrappers/lzma_b85/train_gpt.py"
    assert finding.location.line == decoded_line
    assert finding.location.decoded_from is not None
    assert finding.location.decoded_from.line == 2
    assert finding.location.physical_line == 2
    assert "urlopen" in finding.snippet


def test_bomb_fixture_is_refused_quickly(monkeypatch):
    """PG904: the committed bomb (64 MB of zeros in 12 KB) is refused, not expanded."""
    monkeypatch.chdir(FIXTURES.parent)
    start = time.perf_counter()
    report = audit(["fixtures/wrappers/bomb"])
    elapsed = time.perf_counter() - start
    codes = [f.code for f in report.findings]
    assert codes == ["PG904"]
    assert "exceeds" in report.findings[0].message and "limit" in report.findings[0].message
    assert elapsed < 10  # generous: decoding stops at the limit instead of inflating 64 MB


@pytest.mark.parametrize(
    "compress",
    [
        lambda d: f"zlib.decompress(base64.b64decode({base64.b64encode(zlib.compress(d, 9))!r}))",
        lambda d: f"bz2.decompress(base64.b64decode({base64.b64encode(bz2.compress(d))!r}))",
        lambda d: f"gzip.decompress(base64.b64decode({base64.b64encode(gzip.compress(d))!r}))",
        lambda d: f"brotli.decompress(base64.b64decode({base64.b64encode(brotli.compress(d))!r}))",
    ],
    ids=["zlib", "bz2", "gzip", "brotli"],
)
def test_bombs_of_every_codec_are_refused(compress):
    result = unpack(_wrap(compress(b"\0" * (MAX_LAYER_BYTES + 1000))), "bomb.py")
    assert not result.payloads
    assert len(result.failures) == 1 and "limit" in result.failures[0].reason


def test_corrupt_data_is_a_failure_not_a_crash():
    result = unpack(_wrap("lzma.decompress(base64.b85decode('not really lzma'))"), "w.py")
    assert not result.payloads
    assert result.failures and result.failures[0].line == 2


def test_exec_of_a_variable_is_not_a_wrapper():
    result = unpack("code = input()\nexec(code)\n", "w.py")
    assert not result.payloads and not result.failures and not result.decoded_exec_lines


def test_exec_of_a_decode_of_non_literal_data_is_reported():
    result = unpack("import zlib\nexec(zlib.decompress(open('blob').read()))\n", "w.py")
    assert not result.payloads
    assert result.failures and "not a literal" in result.failures[0].reason


def test_exec_of_a_plain_string_is_left_to_the_static_rules():
    result = unpack("exec('x = 1')\n", "w.py")
    assert not result.payloads and not result.failures


def test_depth_limit():
    text = "y = 1\n"
    for _ in range(MAX_DEPTH + 2):
        text = f"import zlib, base64\nexec(zlib.decompress(base64.b64decode({base64.b64encode(zlib.compress(text.encode()))!r})))\n"
    result = unpack(text, "deep.py")
    assert len(result.payloads) == MAX_DEPTH
    assert any("nested deeper" in f.reason for f in result.failures)


def test_non_utf8_payload():
    blob = zlib.compress(b"x = 1  # \xff")
    result = unpack(_wrap(f"zlib.decompress({blob!r})"), "w.py")
    assert result.failures and "UTF-8" in result.failures[0].reason


@pytest.mark.parametrize("line, may", [
    ("exec(lzma.decompress(b))", True),
    ("run = eval", True),
    ("from builtins import exec as run", True),
    ("import builtins as b; b.exec(x)", True),
    ("__import__('builtins').exec(x)", True),
    ("model.eval(); eval_val(model)", False),
    ("executor = make_executor()", False),
])
def test_sources_without_an_exec_reference_are_not_parsed_for_wrappers(line, may):
    from auditor.unpack import _MAY_EXEC

    assert bool(_MAY_EXEC.search(line)) is may
