"""Optimizers of the baseline: Muon for the 2-D matrices inside the blocks, Adam for the rest.

Muon (https://kellerjordan.github.io/posts/muon/) keeps a Nesterov momentum buffer per matrix and
replaces the update by its nearest (semi-)orthogonal matrix, found with five Newton-Schulz steps
in the dtype `model.compute_dtype` picks for the device: bf16 on CUDA as the challenge, float32 on
CPU (bf16 matmuls are emulated, ~80x slower, on CPUs without native bf16). Under torch.distributed, matrix i is orthogonalized on rank i % world_size and the flat
update is summed across ranks, so every rank applies the same update.

Parameter groups (learning rates from the Hyperparameters):
- tok_emb.weight              Adam  TIED_EMBED_LR (tied) or EMBED_LR
- lm_head.weight (untied only) Adam HEAD_LR
- block matrices               Muon  MATRIX_LR
- block vectors, control tensors and skip_weights   Adam  SCALAR_LR
Every group remembers its `base_lr`; the training loop sets lr = base_lr * schedule each step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from .model import GPT, compute_dtype, is_control_tensor

NEWTON_SCHULZ_COEFFS = (3.4445, -4.7750, 2.0315)  # quintic tuned for fast convergence near 0


def newton_schulz_orthogonalize(grad: Tensor, steps: int = 5, eps: float = 1e-7,
                                dtype: torch.dtype | None = None) -> Tensor:
    """Approximately U V^T for grad = U S V^T (all singular values pushed towards 1), computed and
    returned in `dtype` (default: `compute_dtype(grad.device)`, bf16 on CUDA, float32 on CPU)."""
    a, b, c = NEWTON_SCHULZ_COEFFS
    x = grad.to(dtype or compute_dtype(grad.device))
    x = x / (x.norm() + eps)  # spectral norm <= Frobenius norm <= 1: inside the convergence region
    transposed = grad.size(0) > grad.size(1)
    if transposed:  # iterate on the wide orientation: the Gram matrix x x^T is the smaller one
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton-Schulz, for 2-D parameters only. No weight decay."""

    def __init__(self, params, lr: float, momentum: float, backend_steps: int, nesterov: bool = True):
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps, nesterov=nesterov))
        self.orthogonalize = newton_schulz_orthogonalize  # train.py may swap in a torch.compile'd copy

    @torch.no_grad()
    def step(self, closure=None):
        distributed = dist.is_available() and dist.is_initialized()
        world_size = dist.get_world_size() if distributed else 1
        rank = dist.get_rank() if distributed else 0
        for group in self.param_groups:
            params = group["params"]
            if not params:
                continue
            momentum = group["momentum"]
            device = params[0].device
            flat = torch.zeros(sum(p.numel() for p in params), device=device, dtype=compute_dtype(device))
            offset = 0
            for i, p in enumerate(params):
                if i % world_size == rank and p.grad is not None:
                    state = self.state[p]
                    if "momentum_buffer" not in state:  # not setdefault: that would allocate zeros every step
                        state["momentum_buffer"] = torch.zeros_like(p.grad)
                    buf = state["momentum_buffer"]
                    buf.mul_(momentum).add_(p.grad)
                    g = p.grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                    g = self.orthogonalize(g, steps=group["backend_steps"])
                    g = g * max(1.0, g.size(0) / g.size(1)) ** 0.5  # tall matrices: keep RMS update size
                    flat[offset : offset + p.numel()] = g.flatten()
                offset += p.numel()
            if distributed:
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)  # each slice was written by exactly one rank
            offset = 0
            for p in params:
                p.add_(flat[offset : offset + p.numel()].view_as(p).to(p.dtype), alpha=-group["lr"])
                offset += p.numel()
        return None


def build_optimizers(model: GPT, hp) -> tuple[list[torch.optim.Optimizer], Muon]:
    """The baseline's optimizer split (see the module docstring). Returns (all optimizers, muon)."""
    block_params = list(model.blocks.named_parameters())
    matrix_params = [p for name, p in block_params if p.ndim == 2 and not is_control_tensor(name)]
    scalar_params = [p for name, p in block_params if p.ndim < 2 or is_control_tensor(name)]
    if model.skip_weights.numel():
        scalar_params.append(model.skip_weights)
    fused = next(model.parameters()).is_cuda  # fused Adam kernels are a CUDA speed-up only

    def adam(params: list[Tensor], lr: float) -> torch.optim.Adam:
        return torch.optim.Adam([{"params": params, "lr": lr, "base_lr": lr}],
                                betas=(hp.beta1, hp.beta2), eps=hp.adam_eps, fused=fused)

    token_lr = hp.tied_embed_lr if model.config.tie_embeddings else hp.embed_lr
    muon = Muon(matrix_params, lr=hp.matrix_lr, momentum=hp.muon_momentum, backend_steps=hp.muon_backend_steps)
    for group in muon.param_groups:
        group["base_lr"] = hp.matrix_lr
    optimizers: list[torch.optim.Optimizer] = [adam([model.tok_emb.weight], token_lr), muon,
                                               adam(scalar_params, hp.scalar_lr)]
    if model.lm_head is not None:
        optimizers.insert(1, adam([model.lm_head.weight], hp.head_lr))
    return optimizers, muon
