"""Line shapes of print and log calls, and log lines matched back to their statements."""

from __future__ import annotations

from auditor.scored.formats import formats_of
from auditor.scored.logmatch import Matcher
from auditor.static.index import index_of

from ..static.helpers import source_of

CODE = '''
import logging
logger = logging.getLogger(__name__)
def run(args, e, n, lr, tag, bpb):
    print(f"ttt:starting lr={lr} epochs={n}")
    log0("ttt:epoch=%d/%d loss %.4f" % (e, n, bpb))
    logger.info("slot lr %s steps %d", lr, n)
    print("final {} val_bpb:{:.8f}".format(tag, bpb))
    print("training finished without errors")
    print(f"{tag}: {bpb}")
    print("ok")
    x = f"not a line {tag} at all"
'''


def _formats():
    source = source_of(CODE)
    return formats_of(source, index_of(source))


def test_fstrings_percent_format_and_logging_calls_give_line_shapes():
    shapes = {f.template for f in _formats()}
    assert shapes == {
        "ttt:starting lr={lr} epochs={n}",
        "ttt:epoch={e}/{n} loss {bpb}",
        "slot lr {lr} steps {n}",
        "final {tag} val_bpb:{bpb}",
        "training finished without errors",
    }  # too little literal text, or no statement of its own: no shape


def test_a_line_gives_the_values_of_the_printed_expressions():
    matcher = Matcher(_formats())
    formats, values = matcher.match_line("ttt:epoch=1/3 loss 2.1000")
    assert [f.line for f in formats] == [5] and values == ("1", "3", "2.1000")
    assert matcher.match_line("[rank0]: ttt:starting lr=0.01 epochs=3")[1] == ("0.01", "3")


def test_a_line_with_more_before_or_after_it_is_not_the_statement_s():
    matcher = Matcher(_formats())
    assert matcher.match_line("step:3 training finished without errors, then crashed") is None
    assert matcher.match_line("x final_ngram val_bpb:0.5 extra words") is None


def test_a_line_two_statements_print_in_different_places_proves_neither():
    source = source_of('''
        def f(a, on):
            if on:
                print(f"stage done {a}")
            else:
                print(f"stage done {a}")
    ''')
    matcher = Matcher(formats_of(source, index_of(source)))
    assert matcher.match_line("stage done 3") is None


def test_the_last_value_of_a_line_may_hold_spaces():
    source = source_of('''
        def f(n, layers):
            print(f"XSA:last_{n} active_layers:{layers}")
    ''')
    matcher = Matcher(formats_of(source, index_of(source)))
    assert matcher.match_line("XSA:last_11 active_layers:[0, 1, 2]")[1] == ("11", "[0, 1, 2]")


def test_a_very_long_line_is_not_matched_and_a_huge_format_is_not_compiled():
    fields = " ".join(f"v{i}={{a}}" for i in range(40))
    source = source_of(f'''
        def f(a):
            print(f"many {fields}")
            print(f"short line value {{a}}")
    ''')
    formats = formats_of(source, index_of(source))
    assert [f.template for f in formats] == ["short line value {a}"]
    matcher = Matcher(formats)
    assert matcher.match_log("x.log", ["short line value " + "y " * 5000, "short line value 3"]).first
    assert [m.line for m in matcher.match_log("x.log", ["short line value " + "y " * 5000]).proven()] == []
