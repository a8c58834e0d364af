"""The baseline GPT of the challenge: 9 blocks x 512 wide, GQA 8/4, relu^2 MLP, U-Net skips,
tied embeddings and a tanh logit soft-cap; 17,059,912 parameters at the baseline config.

    ids -> tok_emb -> rms_norm -> x0
    blocks 0..L/2-1 ("encoder") push their outputs; the remaining blocks ("decoder") first add
    skip_weights[i] * (the output pushed last), then run; every block also mixes in x0.
    block:  x = resid_mix[0]*x + resid_mix[1]*x0
            x = x + attn_scale * attn(rms_norm(x))
            x = x + mlp_scale  * mlp(rms_norm(x))
    head:   logits = C * tanh((rms_norm(x) @ tok_emb.T) / C),  C = logit_softcap = 30

`logits()` is the full next-token distribution (before softmax) at every position and `loss()` is
cross-entropy on it, so an evaluator or the causality harness can read either. Parameter names and
shapes match the challenge's train_gpt.py, so its state dicts load here and vice versa.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Small "control" tensors: kept in fp32 and optimized by Adam, never by Muon; kept in fp32 in the
# int8 artifact. Matched by substring, as in the challenge.
CONTROL_TENSOR_NAME_PATTERNS = (
    "attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix", "resid_mixes",
    "q_gain", "skip_weight", "skip_weights",
)


def is_control_tensor(name: str) -> bool:
    return any(pattern in name for pattern in CONTROL_TENSOR_NAME_PATTERNS)


def compute_dtype(device: torch.device) -> torch.dtype:
    """The precision policy, decided here and nowhere else: the dtype of the reduced-precision work
    (the model's autocast and cast, Muon's Newton-Schulz iteration and its update buffer).

    CUDA: bf16, exactly as the challenge. Every other device: float32. CPUs without native bf16
    (AVX2 only) emulate every bf16 matmul, about 80x slower than float32 (512x512: 400 ms against
    4.8 ms), and a bf16 result depends on how the CPU rounds (AVX-512 BF16 instructions or an
    emulation), so float32 keeps a CPU run fast and its figures close across x86 machines. The price:
    a CPU run no longer reproduces the challenge's own CPU run (which orthogonalizes in bf16) bit for bit.
    """
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def autocast(device: torch.device):
    """bf16 autocast where `compute_dtype` says bf16 (CUDA, as the challenge); elsewhere float32 throughout."""
    dtype = compute_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 1024
    num_layers: int = 9
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4
    mlp_mult: int = 2
    seq_len: int = 1024  # train (and baseline eval) sequence length; the model itself has no limit
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = 30.0
    rope_base: float = 10000.0
    qk_gain_init: float = 1.5

    @classmethod
    def baseline(cls, **overrides) -> GPTConfig:
        """The Naive Baseline record: 9x512, vocab 1024, seq 1024."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides) -> GPTConfig:
        """A named tiny CPU flavour for tests and the causality harness (about 90k parameters)."""
        return replace(cls(vocab_size=512, num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, seq_len=64),
                       **overrides)

    @classmethod
    def smoke(cls, **overrides) -> GPTConfig:
        """The smoke rerun's model: 4x128, vocab 512, seq 128 (about 0.5M parameters)."""
        return replace(cls(vocab_size=512, num_layers=4, model_dim=128, num_heads=4, num_kv_heads=2, seq_len=128),
                       **overrides)


class CastedLinear(nn.Linear):
    """A bias-free linear layer whose (fp32 master) weight is cast to the input's dtype at matmul
    time, so bf16 autocast computes in bf16 while the optimizer updates fp32 weights."""

    def __init__(self, in_features: int, out_features: int, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=False)
        self.zero_init = zero_init  # output projections start at zero: every block starts as identity

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.to(x.dtype))


class Rotary(nn.Module):
    """Rotary position embedding tables for one head size (rotate-half convention)."""

    def __init__(self, head_dim: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # [head_dim/2]
        self._tables: tuple[Tensor, Tensor] | None = None

    def forward(self, seq_len: int) -> tuple[Tensor, Tensor]:
        """(cos, sin), each [1, 1, seq_len, head_dim/2] in the buffer's dtype.

        The tables are cached, as in the challenge: built inside a compiled graph, cos and sin would be
        recomputed per element by every fused kernel that reads them (11 % of a training step on an
        H200). They are not cached under inference_mode, whose tensors could not be used for training
        afterwards (score-first TTT scores, then trains)."""
        if not torch.compiler.is_compiling() and torch.is_inference_mode_enabled():  # compiled: never inference
            return self._build(seq_len)
        tables = self._tables
        if (tables is None or tables[0].size(2) != seq_len or tables[0].device != self.inv_freq.device
                or tables[0].dtype != self.inv_freq.dtype):
            tables = self._tables = self._build(seq_len)
        return tables

    def _build(self, seq_len: int) -> tuple[Tensor, Tensor]:
        # Positions take the buffer's dtype. After the challenge's `.bfloat16()` cast this is bf16, so
        # positions above 256 are rounded exactly as in the baseline's CUDA runs; in fp32 they are exact.
        t = torch.arange(seq_len, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        freqs = torch.outer(t, self.inv_freq)  # [T, head_dim/2]
        return freqs.cos()[None, None], freqs.sin()[None, None]


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the pairs (x[..., i], x[..., i + d/2]) of x: [B, H, T, d] by the angles of (cos, sin)."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        dim, heads, kv_heads = config.model_dim, config.num_heads, config.num_kv_heads
        if dim % heads or heads % kv_heads:
            raise ValueError(f"model_dim={dim} must divide by num_heads={heads}, and that by num_kv_heads={kv_heads}")
        self.num_heads, self.num_kv_heads, self.head_dim = heads, kv_heads, dim // heads
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for RoPE")
        self.c_q = CastedLinear(dim, dim)
        self.c_k = CastedLinear(dim, kv_heads * self.head_dim)
        self.c_v = CastedLinear(dim, kv_heads * self.head_dim)
        self.proj = CastedLinear(dim, dim, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((heads,), config.qk_gain_init, dtype=torch.float32))

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        B, T, D = x.shape
        q = self.c_q(x).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # [B, H, T, hd]
        k = self.c_k(x).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
        v = self.c_v(x).view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, hd]
        q, k = F.rms_norm(q, (self.head_dim,)), F.rms_norm(k, (self.head_dim,))  # QK-norm
        q, k = apply_rotary(q, cos.to(q.dtype), sin.to(q.dtype)), apply_rotary(k, cos.to(k.dtype), sin.to(k.dtype))
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]  # learnable per-head temperature
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))  # [B, T, D]


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = CastedLinear(config.model_dim, config.mlp_mult * config.model_dim)
        self.proj = CastedLinear(config.mlp_mult * config.model_dim, config.model_dim, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(torch.relu(self.fc(x)).square())  # relu^2


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        dim = config.model_dim
        self.attn = CausalSelfAttention(config)
        self.mlp = MLP(config)
        self.attn_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.mlp_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        # resid_mix[0] weighs the running residual, resid_mix[1] the embedding x0; starts as [1, 0].
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))).float())

    def forward(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x = mix[0] * x + mix[1] * x0  # [B, T, D]
        x = x + self.attn_scale.to(x.dtype) * self.attn(F.rms_norm(x, (x.size(-1),)), cos, sin)
        x = x + self.mlp_scale.to(x.dtype) * self.mlp(F.rms_norm(x, (x.size(-1),)))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.logit_softcap <= 0:
            raise ValueError(f"logit_softcap must be positive, got {config.logit_softcap}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.model_dim)
        self.num_encoder_layers = config.num_layers // 2
        self.num_decoder_layers = config.num_layers - self.num_encoder_layers
        num_skips = min(self.num_encoder_layers, self.num_decoder_layers)
        self.skip_weights = nn.Parameter(torch.ones(num_skips, config.model_dim, dtype=torch.float32))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.lm_head = (None if config.tie_embeddings
                        else CastedLinear(config.model_dim, config.vocab_size, zero_init=True))
        self.rotary = Rotary(config.model_dim // config.num_heads, config.rope_base)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.config.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, mean=0.0, std=self.config.tied_embed_init_std)
        for module in self.modules():
            if isinstance(module, CastedLinear) and module.zero_init:
                nn.init.zeros_(module.weight)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def hidden(self, input_ids: Tensor) -> Tensor:
        """Final normalized hidden states [B, T, D] for input_ids [B, T]."""
        x = self.tok_emb(input_ids)  # [B, T, D]
        x = F.rms_norm(x, (x.size(-1),))
        x0 = x
        cos, sin = self.rotary(input_ids.size(1))
        skips: list[Tensor] = []
        for block in self.blocks[: self.num_encoder_layers]:
            x = block(x, x0, cos, sin)
            skips.append(x)
        for i, block in enumerate(self.blocks[self.num_encoder_layers :]):
            if skips:  # U-Net: the last encoder output feeds the first decoder block, and so on
                x = x + self.skip_weights[i].to(x.dtype) * skips.pop()
            x = block(x, x0, cos, sin)
        return F.rms_norm(x, (x.size(-1),))

    def logits(self, input_ids: Tensor) -> Tensor:
        """Soft-capped next-token logits, float32 [B, T, V]: logits[b, t] predicts input_ids[b, t+1]."""
        x = self.hidden(input_ids)
        raw = F.linear(x, self.tok_emb.weight) if self.lm_head is None else self.lm_head(x)  # [B, T, V]
        cap = self.config.logit_softcap
        # The soft-cap in fp32: what torch.compile's fused kernel computes from the bf16 matmul output
        # (as upstream's compiled training and eval do), and not bf16's 0.125-wide steps near +-30 when
        # the model runs eagerly (the evaluators). CE is always taken in fp32, as in the challenge.
        return cap * torch.tanh(raw.float() / cap)

    def loss(self, input_ids: Tensor, target_ids: Tensor, reduction: str = "mean") -> Tensor:
        """Cross-entropy (nats) of target_ids [B, T] under logits(input_ids): a scalar for
        reduction="mean", float32 [B, T] for reduction="none"."""
        logits = self.logits(input_ids)
        nll = F.cross_entropy(logits.flatten(0, 1), target_ids.flatten(), reduction=reduction)
        return nll.view_as(target_ids) if reduction == "none" else nll

    def forward(self, input_ids: Tensor, target_ids: Tensor) -> Tensor:
        """Mean training loss (what DDP and torch.compile wrap)."""
        return self.loss(input_ids, target_ids)


def cast_for_bf16(model: GPT) -> GPT:
    """The challenge's CUDA dtypes: everything bf16, then linear weights and small or control
    parameters back to fp32 (fp32 master weights, bf16 compute). tok_emb stays bf16."""
    model.bfloat16()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, CastedLinear):
                module.float()
        for name, param in model.named_parameters():
            if param.ndim < 2 or is_control_tensor(name):
                param.data = param.data.float()
    return model
