"""Environment defaults, configuration attributes, and the settings of shipped run commands."""

from __future__ import annotations

import libcst as cst

from auditor.static.env import UNKNOWN, Config, log_scenarios, run_scenarios

from .helpers import function, indexed


def _value(code: str, expr: str, scope_name: str | None = None, overrides=None):
    _, index = indexed(code)
    config = Config(index)
    if overrides:
        config.add_overrides(overrides)
    scope = function(index, scope_name) if scope_name else index.module_scope
    return config.evaluate(cst.parse_expression(expr), scope)


CONFIG = """
import os
def _env(name, default):
    return type(default)(os.environ.get(name, default))
class Hyperparameters:
    ngram_eval_order = int(os.environ.get("NGRAM_EVAL_ORDER", 0))
    ttt_enabled = bool(int(os.getenv("TTT_ENABLED", "1")))
    slot = os.environ.get("SLOT", "0") == "1"
    mode = os.environ.get("MODE", "Legal").lower()
    epochs = _env("EPOCHS", 3)
class Cache:
    def __init__(self):
        self.total_tokens = 0
ORDER = int(os.environ.get("ORDER", "7"))
def main(args):
    order = args.ngram_eval_order
    return order
"""


def test_env_reads_and_config_attributes_evaluate_at_their_defaults():
    assert _value(CONFIG, "args.ngram_eval_order >= 2").value is False
    assert _value(CONFIG, "args.ttt_enabled").value is True
    assert _value(CONFIG, "h.slot").value is False
    assert _value(CONFIG, "args.mode == 'legal'").value is True
    assert _value(CONFIG, "args.epochs").value == 3
    assert _value(CONFIG, "ORDER > 0 and args.ttt_enabled").value is True
    result = _value(CONFIG, "order > 0", "main")
    assert result.value is False and [e.name for e in result.env] == ["NGRAM_EVAL_ORDER"]


def test_a_class_body_on_its_header_line_is_configuration_too():
    # minified scripts put a whole configuration class on one line
    minified = (
        "import os\n"
        "class H:data_path=os.environ.get('DATA_PATH','./data');slot_enabled=bool(int(os.environ.get('SLOT_ENABLED','0')))\n"
        "def run(args):\n"
        "\tuse_slot=getattr(args,'slot_enabled',False)\n"
        "\treturn use_slot\n"
    )
    assert _value(minified, "args.slot_enabled").value is False
    result = _value(minified, "use_slot", "run")
    assert result.value is False and [e.name for e in result.env] == ["SLOT_ENABLED"]


def test_an_object_attribute_set_once_from_configuration_is_configuration():
    code = (
        "import os\n"
        "class H:\n"
        "    conv = bool(int(os.environ.get('CONV', '0')))\n"
        "class Block:\n"
        "    def __init__(self, args):\n"
        "        self.conv = args.conv\n"
        "        self.steps = 0\n"
        "    def forward(self, x):\n"
        "        return self.conv\n"
        "    def step(self):\n"
        "        self.steps += 1\n"
        "        return self.steps\n"
    )
    result = _value(code, "self.conv", "forward")
    assert result.value is False and [e.name for e in result.env] == ["CONV"]
    # state the object changes, or sets from nothing in the environment, decides nothing
    assert _value(code, "self.steps", "step").value is UNKNOWN


def test_an_alias_of_the_environment_getter_reads_the_environment():
    code = (
        "import os\n"
        "def main(ttt_lr):\n"
        "    _e = os.environ.get\n"
        "    enabled = bool(int(_e('TTT_ENABLED', '0'))) and ttt_lr > 0\n"
        "    return enabled\n"
    )
    result = _value(code, "bool(int(_e('TTT_ENABLED', '0')))", "main")
    assert result.value is False and [e.name for e in result.env] == ["TTT_ENABLED"]
    assert _value(code, "enabled", "main").value is False


def test_a_section_of_the_configuration_is_configuration():
    code = (
        "import os\n"
        "from dataclasses import dataclass, field\n"
        "@dataclass\n"
        "class EvalConfig:\n"
        "    ngram: bool = bool(int(os.environ.get('NGRAM_EVAL_ENABLED', '0')))\n"
        "@dataclass\n"
        "class Settings:\n"
        "    eval: EvalConfig = field(default_factory=EvalConfig)\n"
        "def main():\n"
        "    run = Settings()\n"
        "    return run.eval.ngram\n"
    )
    result = _value(code, "run.eval.ngram", "main")
    assert result.value is False and [e.name for e in result.env] == ["NGRAM_EVAL_ENABLED"]


def test_instance_state_is_not_configuration():
    assert _value(CONFIG, "self.total_tokens < 100", "main").value is UNKNOWN
    assert _value(CONFIG, "model.training").value is UNKNOWN


def test_overrides_win_over_defaults():
    from auditor.static.env import EnvValue

    result = _value(CONFIG, "args.ngram_eval_order >= 2", overrides={"NGRAM_EVAL_ORDER": EnvValue("NGRAM_EVAL_ORDER", "7", "run.sh")})
    assert result.value is True
    assert result.env[0].describe() == "NGRAM_EVAL_ORDER=7 in run.sh"


def test_run_commands_give_one_scenario_each():
    texts = {
        "run.sh": "export TTT_ENABLED=1\nNGRAM_EVAL_ORDER=7 SEED=1 \\\n  torchrun --nproc_per_node=8 train_gpt.py\nSEED=2 torchrun train_gpt.py\n",
        "README.md": "Run `NGRAM_EVAL_ORDER=0 python train_gpt.py` for the baseline.\nSet NGRAM_EVAL_ORDER=9 to try more.\n",
    }
    scenarios = run_scenarios(texts, {"TTT_ENABLED", "NGRAM_EVAL_ORDER"})
    values = [{k: v.value for k, v in s.items()} for s in scenarios]
    assert {"TTT_ENABLED": "1", "NGRAM_EVAL_ORDER": "7"} in values
    assert {"TTT_ENABLED": "1"} in values
    assert {"NGRAM_EVAL_ORDER": "0"} in values
    assert all(v.get("NGRAM_EVAL_ORDER") != "9" for v in values), "prose is not a command"


def test_logs_give_the_settings_they_print():
    scenarios = log_scenarios({"train.log": "ngram_cache:enabled orders=2-9\nttt_epochs: 3\n"}, {"ngram_cache": "NGRAM_CACHE", "ttt_epochs": "TTT_EPOCHS"})
    assert {k: v.value for k, v in scenarios[0].items()} == {"NGRAM_CACHE": "1", "TTT_EPOCHS": "3"}


def test_an_empty_value_in_a_dump_takes_nothing_from_the_next_line():
    dump = "Hyperparameters:\n  artifact_dir: \n  attn_clip_sigmas: 13.0\n"
    scenarios = log_scenarios({"train.log": dump}, {"artifact_dir": "ARTIFACT_DIR", "attn_clip_sigmas": "ATTN_CLIP_SIGMAS"})
    assert {k: v.value for k, v in scenarios[0].items()} == {"ATTN_CLIP_SIGMAS": "13.0"}


DERIVED = """
import os
DATA_DIR = os.environ.get("DATA_DIR", "./data")
VOCAB = int(os.environ.get("VOCAB_SIZE", "1024"))
class Hyperparameters:
    rank = int(os.environ.get("RANK", "0"))
    is_main_process = int(os.environ.get("RANK", "0")) == 0
    train_files = os.path.join(DATA_DIR, "fineweb_train_*.bin")
    vocab_size = VOCAB
    slot = os.environ.get("SLOT", "0") == "1"
    ttt = int(os.environ.get("TTT_STEPS", "0")) > 0
    epochs = bool(int(os.getenv("EPOCHS", "1")))
    doubled = int(os.environ.get("LAYERS", "4")) * 2
    act = os.environ.get("MLP_ACT", "relu_sq").strip().lower()
"""


def test_only_attributes_that_print_the_variable_itself_map_to_it():
    _, index = indexed(DERIVED)
    mapped = Config(index).attribute_env()
    assert mapped == {"rank": "RANK", "vocab_size": "VOCAB_SIZE", "slot": "SLOT", "ttt": "TTT_STEPS", "epochs": "EPOCHS", "act": "MLP_ACT"}
    # a flag true when RANK is 0, a path joined onto DATA_DIR, a multiple of LAYERS: their
    # printed values are not the variables' text
    constants = Config(index).constant_env()
    assert constants["DATA_DIR"] == "DATA_DIR" and constants["VOCAB"] == "VOCAB_SIZE"
    assert not {"is_main_process", "train_files", "doubled"} & set(constants)


REREAD = """
import os
def main():
    enabled = bool(int(os.environ.get("NGRAM_ENABLED", "0")))
    step = 1
    enabled = bool(int(os.environ.get("NGRAM_ENABLED", "0")))
    counter = 0
    counter = counter + 1
    return enabled
"""


def test_a_flag_read_twice_from_the_environment_keeps_its_value():
    result = _value(REREAD, "enabled", "main")
    assert result.value is False and [e.name for e in result.env] == ["NGRAM_ENABLED"]
    assert _value(REREAD, "counter > 0", "main").value is UNKNOWN  # two different assignments


PROVENANCE = """
import os
class Settings:
    blend = bool(int(os.environ.get("BLEND", "0")))
class Cache:
    blend = True
def run(q9):
    return q9.blend
def helper(z: Settings, w):
    return z.blend, w.blend
def entry():
    k3 = Settings()
    run(k3)
    other = Cache()
    return k3.blend, other.blend
"""


def test_the_configuration_object_is_known_from_where_it_comes_from_not_its_name():
    # an instance of the class that reads the environment, a parameter annotated with it,
    # and a parameter every caller passes it to
    assert _value(PROVENANCE, "k3.blend", "entry").value is False
    assert _value(PROVENANCE, "z.blend", "helper").value is False
    assert _value(PROVENANCE, "q9.blend", "run").value is False
    # an instance of another class, and a parameter no caller passes: unknown
    assert _value(PROVENANCE, "other.blend", "entry").value is UNKNOWN
    assert _value(PROVENANCE, "w.blend", "helper").value is UNKNOWN


def test_a_dumped_script_in_a_log_sets_nothing():
    code = 'class H:\n    order_adaptive = bool(int(os.environ.get("ORDER_ADAPTIVE", "0")))\n    """When order_adaptive=True, per-order thresholds."""\n'
    log = code + "step:1/2 train_loss:3.0\n"
    attributes = {"order_adaptive": "ORDER_ADAPTIVE"}
    assert log_scenarios({"train.log": log}, attributes)[0]["ORDER_ADAPTIVE"].value == "1"  # the docstring, read as a value
    code_lines = frozenset(line.strip() for line in code.splitlines())
    assert log_scenarios({"train.log": log}, attributes, code_lines) == []
