"""PG904 wrapper-not-unpacked."""

from auditor.findings import Confidence, Severity
from auditor.rule import Invalid, ToolRule, Valid

# lzma (raw LZMA2) + base85 of "x = 1\n", the shape real wrappers have
_GOOD = (
    "import lzma as L, base64 as B\n"
    'exec(L.decompress(B.b85decode("0RRPfAUz;43IG"),format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))\n'
)


class WrapperNotUnpacked(ToolRule):
    """
    ## What it does
    Reports a self-extracting wrapper — `exec` of a decompress/decode chain such as
    `exec(lzma.decompress(base64.b85decode("...")))` — that the auditor could not decode:
    corrupt data, an unsupported codec or filter, a payload over the size limit (a
    decompression bomb), or nesting deeper than the limit.

    ## Why is this bad?
    About one real script in six ships as such a wrapper, counted at its compressed size.
    The auditor decodes wrappers statically, without executing them, and analyses the
    payload; when that fails, the code that actually runs was not checked.

    ## Example
    ```python
    import lzma, base64
    exec(lzma.decompress(base64.b85decode("not really lzma")))
    ```

    ## Use instead
    Ship a wrapper that decodes with the standard library (lzma, zlib, gzip, bz2 with
    base64/base85) or brotli, under 8 MB per layer.

    ## References
    - L-CODE-COMPRESSION: compressed self-extracting scripts are accepted and counted at
      their shipped size (openai/parameter-golf #1413, #1855, #1915).
    """

    CODE = "PG904"
    NAME = "wrapper-not-unpacked"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1413", "#1855")
    TAGS = ("tool", "dynamic_code")
    VALID = (Valid(code=_GOOD, note="a wrapper that decodes"),)
    INVALID = (
        Invalid(code='import lzma, base64\nexec(lzma.decompress(base64.b85decode("not really lzma")))\n', lines=(2,)),
    )
    # A real decompression bomb (50 MB of zeros) is built at test time in tests/test_unpack.py.
    TESTED_IN = ("tests/test_unpack.py",)
