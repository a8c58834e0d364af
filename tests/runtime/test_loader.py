"""Loading scripts for a CPU run: knobs, entry point, wrapped evaluations, scaled tables, README env."""

from __future__ import annotations

import textwrap

from auditor.discover import discover
from auditor.runtime import loader
from auditor.runtime.harness import run_env_from_readme

from .conftest import FIXTURES

SCRIPT = textwrap.dedent('''
    import os
    class Hyperparameters:
        vocab_size = int(os.environ.get("VOCAB_SIZE", 1024))
        buckets = int(os.getenv("NGRAM_BUCKETS", "4194304"))
    BUCKETS = 4_194_304
    TABLE_SIZE = 1 << 22
    OTHER = 4_194_304
    def eval_val(x):
        return x
    def eval_val_sliding_ttt(x, buckets=1 << 22):
        def score_chunks(y):
            return y
        return score_chunks(x)
    def collect_hessians(x):
        return x
    class Block:
        def eval_something(self):
            self.use_fused = True
            return 1
    def main():
        return eval_val(1)
    if __name__ == "__main__":
        main()
''')


def test_knobs_entry_wrapping_and_scaling():
    prepared = loader.prepare(SCRIPT, "train_gpt.py", bucket_scale=1e-4)
    assert {"VOCAB_SIZE", "NGRAM_BUCKETS"} <= set(prepared.knobs)
    assert prepared.knobs["VOCAB_SIZE"].default == "1024"
    assert prepared.has_entry
    assert prepared.wrapped == ["eval_val", "score_chunks", "eval_val_sliding_ttt"]
    calls = []
    namespace = {loader.WRAP: lambda fn, name: (calls.append(name), fn)[1]}
    exec(prepared.code, namespace)
    assert namespace["BUCKETS"] == 512 and namespace["TABLE_SIZE"] == 512 and namespace["OTHER"] == 4_194_304
    assert namespace["eval_val_sliding_ttt"].__defaults__ == (512,)
    block = namespace["Block"]()
    block.eval_something()
    assert block.use_fused is False
    assert "main" in namespace and "__pg_entry__" in namespace
    assert any("use_fused" in a for a in prepared.adjustments)


def test_bare_main_call_moves_into_the_entry():
    prepared = loader.prepare("def main():\n    raise SystemExit(3)\nmain()\n", "x.py")
    namespace = {loader.WRAP: lambda fn, name: fn}
    exec(prepared.code, namespace)  # importing does not run main()
    assert prepared.has_entry


def test_tables_are_known_by_the_modulus_and_mask_of_their_keys_not_their_names():
    """A table whose size no name announces: ``key % _NG_B``, a mask ``(1 << 22) - 1`` passed to
    a helper. Every literal of that size (and its mask) is scaled alike; other powers of two
    and integer wrap-arounds (``% (1 << 64)``) are left alone."""
    script = textwrap.dedent('''
        import numpy as np
        _NG_B = 1 << 22
        M = np.uint64((1 << 20) - 1)
        CHUNK = 1 << 17
        def keys(h, mask):
            return h & mask
        def eval_val(h):
            table = np.zeros(1 << 20, dtype=np.uint32)
            wrapped = (h * 2654435761) % (1 << 64)
            return h % _NG_B, keys(h, M), len(table), wrapped
    ''')
    prepared = loader.prepare(script, "train_gpt.py", bucket_scale=1e-4)
    namespace = {loader.WRAP: lambda fn, name: fn}
    exec(prepared.code, namespace)
    assert namespace["_NG_B"] == 512 and int(namespace["M"]) == 127 and namespace["CHUNK"] == 1 << 17
    assert namespace["eval_val"](3 * 2**40 + 5)[2] == 128
    assert namespace["eval_val"](2**63)[3] == (2**63 * 2654435761) % 2**64
    assert any("hashed table size 4194304 scaled to 512" in a for a in prepared.adjustments)


def test_a_table_named_as_one_is_scaled_by_its_name_only():
    prepared = loader.prepare("BUCKETS = 1 << 22\nMASK = (1 << 20) - 1\n", "x.py", bucket_scale=1e-4)
    namespace: dict = {}
    exec(prepared.code, namespace)
    assert namespace["BUCKETS"] == 512 and namespace["MASK"] == (1 << 20) - 1


def test_scaled_buckets_keep_the_load():
    assert loader.scaled_buckets(4_194_304, 2048 / 50_000_000) == 128
    assert loader.scaled_buckets(16_777_216, 2048 / 50_000_000) == 512
    assert loader.scaled_buckets(4096, 1e-6) == 64


def test_readme_run_command():
    readme = textwrap.dedent('''
        ## Run
        ```bash
        NUM_LAYERS=11 TTT_ENABLED=1 TTT_LR=0.002 \\
        TTT_EPOCHS=3 SEED=1337 \\
        torchrun --standalone --nproc_per_node=8 train_gpt.py
        ```
        ```bash
        export SLOT_ENABLED=0
        python3 train_gpt.py
        ```
        Some prose with A=1 in it.
    ''')
    env = run_env_from_readme(readme)
    assert env == {"NUM_LAYERS": "11", "TTT_ENABLED": "1", "TTT_LR": "0.002", "TTT_EPOCHS": "3", "SEED": "1337",
                   "SLOT_ENABLED": "0"}
    assert run_env_from_readme("nothing to see") == {}


def test_wrapped_fixture_is_current():
    bundle = discover([FIXTURES / "wrapped_legal"])[0]
    assert bundle.main_source.is_decoded
    assert bundle.main_source.text == (FIXTURES / "legal_sliding" / "train_gpt.py").read_text()


def test_a_default_that_depends_on_the_world_size_is_read_for_eight_gpus():
    import ast

    source = textwrap.dedent('''
        import os
        _ngram_default = "1" if world_size > 1 else "0"
        use_ngram = bool(int(os.environ.get("NGRAM_CACHE", _ngram_default)))
        single = os.environ.get("SINGLE", "a" if world_size == 1 else "b")
        plain = os.environ.get("PLAIN", "3")
    ''')
    knobs = loader.scan_knobs(ast.parse(source))
    assert knobs["NGRAM_CACHE"].multi_gpu_default == "1"
    assert knobs["SINGLE"].multi_gpu_default == "b"
    assert knobs["PLAIN"].default == "3" and knobs["PLAIN"].multi_gpu_default is None


def test_warm_up_thresholds_shrink_with_the_stream():
    from auditor.runtime.knobs import Settings, knob_values

    knobs = {name: loader.Knob(name, default, 1) for name, default in
             (("MIXER_MIN_TOKENS", "10000"), ("NGRAM_MIN_TOKENS", "32"), ("MIN_COUNT", "2"))}
    paths = {"data_path": "d", "tokenizer": "t.model", "data_dir": "d"}
    values = knob_values(knobs, Settings(), paths)
    assert int(values["MIXER_MIN_TOKENS"]) < Settings().val_tokens  # the mixer switches on in the short run
    assert "NGRAM_MIN_TOKENS" not in values and "MIN_COUNT" not in values  # small thresholds are left alone


def test_the_sequence_length_grows_to_pass_the_script_s_own_bounds():
    from auditor.runtime.knobs import MAX_SEQ_LEN, required_seq_len

    second_pass = "if args.eval_stride != 64 and 64 < sw_seq_len:\n    run()\n"
    assert required_seq_len([second_pass], 64) == 128
    assert required_seq_len(["if args.train_seq_len >= 128: x()"], 64) == 128
    assert required_seq_len(["if eval_seq_len > 100: x()"], 64) == 128
    assert required_seq_len(["assert seq_len <= 4096"], 64) == 64  # an upper bound asks nothing
    assert required_seq_len(["if seq_len >= 2048: use_flash()"], 64) == 64  # beyond what the harness grows to
    assert required_seq_len(["", second_pass], 64) <= MAX_SEQ_LEN


RENAMED_ENV = textwrap.dedent('''
    import os
    class Hyperparameters:
        vocab_size = int(os.environ.get("E0_10", 1024))
        iterations = int(os.environ.get("E1_10", "20000"))
        max_wallclock_seconds: float = float(os.environ.get("E2_21", "600"))
        ngram_buckets = int(os.environ.get("E3_13", "4194304"))
        model_dim = int(os.environ.get("E4_9", 512))
        embed_dim = int(os.environ.get("E5_9", 512))
        mix = float(os.environ.get("E6_3", "0.5")) * float(os.environ.get("E7_3", "2"))
    def make(**kw):
        return kw
    cfg = make(train_seq_len=int(os.environ.get("E8_13", "2048")))
    table = {"eval_stride": int(os.getenv("E9_11", "64"))}
    def evaluate():
        ttt_chunk = int(os.environ.get("E10_16", "32768"))
        return ttt_chunk
''')


def test_a_knob_is_bound_to_the_name_its_value_is_assigned_to():
    import ast

    knobs = loader.scan_knobs(ast.parse(RENAMED_ENV))
    assert knobs["E0_10"].bound == "vocab_size"
    assert knobs["E2_21"].bound == "max_wallclock_seconds"  # annotated
    assert knobs["E8_13"].bound == "train_seq_len"  # a keyword, not the variable the call is assigned to
    assert knobs["E9_11"].bound == "eval_stride"  # a dict key, not the dict's variable
    assert knobs["E6_3"].bound is None and knobs["E7_3"].bound is None  # one value computed from two knobs


def test_renamed_environment_variables_are_shrunk_by_what_the_script_binds_them_to():
    import ast

    from auditor.runtime.knobs import Settings, knob_values, restored_sizes, role_of

    knobs = loader.scan_knobs(ast.parse(RENAMED_ENV))
    paths = {"data_path": "d", "tokenizer": "t.model", "data_dir": "d"}
    s = Settings()
    values = knob_values(knobs, s, paths)
    assert values["E0_10"] == str(s.vocab) and values["E1_10"] == "2"
    assert float(values["E2_21"]) > 600  # no wall-clock stop in the shrunk run
    assert int(values["E3_13"]) < 1 << 22  # a hashed table scaled to the short stream
    assert values["E8_13"] == str(s.seq_len) and values["E9_11"] == str(s.stride)
    assert values["E10_16"] == str(s.chunk)  # several chunks in the short stream
    assert values["E4_9"] == values["E5_9"] == str(s.model_dim)  # the embedding width tied to the model's
    assert "E6_3" not in values  # a knob of unknown role is left alone
    assert role_of("E0_10", knobs["E0_10"]) == "VOCAB_SIZE"
    assert role_of("VOCAB_SIZE", loader.Knob("VOCAB_SIZE", "1024", 1, bound="n_tokens")) == "VOCAB_SIZE"
    # a shape error gives the model's widths back, found by role; never the vocabulary
    restored = restored_sizes("RuntimeError", "mat1 and mat2 shapes cannot be multiplied", values, knobs,
                              {"E4_9": "512", "E5_9": "512", "E0_10": "1024"})
    assert restored == {"E4_9": "512", "E5_9": "512"}
