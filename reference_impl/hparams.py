"""Hyperparameters, read from environment variables with the challenge's names and defaults.

`Hyperparameters.from_env()` reads every field explicitly (the default run is the Naive Baseline
record: 9x512, vocab 1024, 524,288 tokens per step, a 600 s wallclock cap, int8+zlib). Fields past
the baseline's are marked "reference extension"; their defaults leave the baseline's behaviour as it is.
`Hyperparameters.smoke()` is the small CPU configuration of `rerun --smoke`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .data import TRAIN_GLOB, VAL_GLOB
from .model import GPTConfig

EVALUATORS = ("sliding", "ttt", "ngram")  # optional stages after the plain int8 roundtrip eval
QUANT_FORMATS = ("int8+zlib", "int6+lzma")


@dataclass(frozen=True)
class Hyperparameters:
    # Data and run identity.
    data_path: str = "./data/datasets/fineweb10B_sp1024"
    tokenizer_path: str = "./data/tokenizers/fineweb_1024_bpe.model"
    run_id: str = ""
    seed: int = 1337

    # Validation cadence and batch size (tokens per eval step, global).
    val_batch_size: int = 524_288
    val_loss_every: int = 1000
    train_log_every: int = 200

    # Training length and batch.
    iterations: int = 20_000
    warmdown_iters: int = 1200
    warmup_steps: int = 20
    train_batch_tokens: int = 524_288
    train_seq_len: int = 1024
    max_wallclock_seconds: float = 600.0

    # Model shape.
    vocab_size: int = 1024
    num_layers: int = 9
    num_kv_heads: int = 4
    model_dim: int = 512
    num_heads: int = 8
    mlp_mult: int = 2
    tie_embeddings: bool = True
    rope_base: float = 10000.0
    logit_softcap: float = 30.0
    qk_gain_init: float = 1.5

    # Optimizers.
    embed_lr: float = 0.6
    head_lr: float = 0.008
    tied_embed_lr: float = 0.05
    tied_embed_init_std: float = 0.005
    matrix_lr: float = 0.04
    scalar_lr: float = 0.04
    muon_momentum: float = 0.95
    muon_backend_steps: int = 5
    muon_momentum_warmup_start: float = 0.85
    muon_momentum_warmup_steps: int = 500
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.0

    # Reference extensions: where things go and how they run.
    out_dir: str = "."  # logs/<run_id>.txt and the model files are written here
    device: str = "auto"  # auto = cuda when available, else cpu
    grad_accum_steps: int = 0  # 0 = the challenge's 8 // WORLD_SIZE
    compile: int = -1  # torch.compile the model and Newton-Schulz: -1 = on CUDA only
    quant_format: str = "int8+zlib"  # or int6+lzma
    final_evals: str = ""  # comma list from EVALUATORS, run after the int8 roundtrip eval

    # Reference extensions: evaluator settings (used only when named in final_evals).
    eval_seq_len: int = 0  # 0 = train_seq_len
    eval_stride: int = 64
    eval_batch_seqs: int = 32  # sequences or windows per forward pass in the evaluators
    ttt_chunk_tokens: int = 32_768
    ttt_epochs: int = 3
    ttt_lr: float = 0.002
    ttt_momentum: float = 0.9
    ttt_batch_seqs: int = 32
    ttt_grad_clip: float = 1.0
    ttt_freeze_blocks: int = 0
    ngram_order: int = 3
    ngram_alpha: float = 0.2
    ngram_backoff: float = 1.0
    ngram_max_buckets: int = 1 << 16

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Hyperparameters:
        """Every field from its upper-case environment variable (RUN_ID, SEED, ...), else its default;
        keyword overrides win over both."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None:
                continue
            try:
                if f.type in ("bool", bool):
                    values[f.name] = bool(int(raw))  # TIE_EMBEDDINGS=1 / 0, as in the challenge
                elif f.type in ("int", int):
                    values[f.name] = int(raw)
                elif f.type in ("float", float):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                raise ValueError(f"{f.name.upper()}={raw!r} is not a valid {f.type}") from None
        hp = cls(**{**values, **overrides})
        return hp if hp.run_id else replace(hp, run_id=str(uuid.uuid4()))

    @classmethod
    def smoke(cls, **overrides) -> Hyperparameters:
        """The CPU smoke configuration: GPTConfig.smoke(), 1,024 tokens per step, 200 steps,
        no wallclock cap (the warmdown is then step-based), every evaluator at small sizes."""
        model = GPTConfig.smoke()
        base = dict(
            vocab_size=model.vocab_size, num_layers=model.num_layers, model_dim=model.model_dim,
            num_heads=model.num_heads, num_kv_heads=model.num_kv_heads, train_seq_len=model.seq_len,
            iterations=200, warmdown_iters=60, warmup_steps=0, train_batch_tokens=1024,
            grad_accum_steps=1, max_wallclock_seconds=0.0, val_loss_every=50, train_log_every=25,
            val_batch_size=8192, muon_momentum_warmup_steps=100, device="cpu",
            final_evals="sliding,ngram,ttt", eval_stride=32, ttt_chunk_tokens=1024, ttt_epochs=1,
            ttt_batch_seqs=8, ngram_order=3, ngram_max_buckets=4096, run_id="smoke",
        )
        return cls(**{**base, **overrides})

    # -- derived values ---------------------------------------------------------------------------

    def model_config(self) -> GPTConfig:
        return GPTConfig(
            vocab_size=self.vocab_size, num_layers=self.num_layers, model_dim=self.model_dim,
            num_heads=self.num_heads, num_kv_heads=self.num_kv_heads, mlp_mult=self.mlp_mult,
            seq_len=self.train_seq_len, tie_embeddings=self.tie_embeddings,
            tied_embed_init_std=self.tied_embed_init_std, logit_softcap=self.logit_softcap,
            rope_base=self.rope_base, qk_gain_init=self.qk_gain_init,
        )

    @property
    def train_files(self) -> str:
        return str(Path(self.data_path) / TRAIN_GLOB)

    @property
    def val_files(self) -> str:
        return str(Path(self.data_path) / VAL_GLOB)

    @property
    def eval_len(self) -> int:
        return self.eval_seq_len or self.train_seq_len

    @property
    def evaluators(self) -> tuple[str, ...]:
        names = tuple(name.strip() for name in self.final_evals.split(",") if name.strip())
        unknown = [name for name in names if name not in EVALUATORS]
        if unknown:
            raise ValueError(f"FINAL_EVALS: unknown evaluator(s) {unknown}; choose from {EVALUATORS}")
        return names

    def validate(self) -> None:
        """Clear errors for settings that cannot work, before any data is read."""
        if self.quant_format not in QUANT_FORMATS:
            raise ValueError(f"QUANT_FORMAT={self.quant_format!r}: choose from {QUANT_FORMATS}")
        if self.eval_stride <= 0 or self.eval_stride > self.eval_len:
            raise ValueError(f"EVAL_STRIDE={self.eval_stride} must lie in [1, eval seq len {self.eval_len}]")
        if not self.tokenizer_path.endswith(".model"):
            raise ValueError(f"TOKENIZER_PATH must be a SentencePiece .model file: {self.tokenizer_path}")
        self.evaluators  # noqa: B018 -- raises on unknown names
