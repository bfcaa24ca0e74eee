"""Harmon's image side, written for this project: a MAR encoder/decoder over VAE latent
tokens and a per-token diffusion head (an MLP with AdaLN conditioning) with its sampler.

What it computes (restated from the Harmon and MAR papers and checked against the public
module structure; see `loading.py` for the weight names):

- Encoder: each latent token (VAE channels x patch^2) is projected to the encoder width;
  `buffer_size` buffer tokens, all set to the learned null condition, are put in front;
  learned position embeddings are added (the learned grid is bilinearly resized when the
  latent grid differs, e.g. a 16x16 grid used at 32x32 for 512 px); a LayerNorm; masked
  tokens are *dropped* (the encoder sees the buffer and the visible tokens only); then
  pre-norm transformer blocks and a final LayerNorm.
- Decoder: projects the encoder output to the decoder width, puts it back at its
  positions among learned mask embeddings, adds position embeddings, runs its blocks and
  a LayerNorm, drops the buffer and adds the diffusion-head position embedding: one
  condition vector per latent position.
- Diffusion head: predicts noise (and a variance interpolation) of one latent token from
  a noisy token, a timestep and its condition vector. Sampling is ancestral DDPM on a
  cosine schedule of `train_steps` (1000) steps respaced to `num_steps` (100 in Harmon),
  with learned variances, classifier-free guidance on the noise prediction, and the
  sampling noise scaled by a temperature.

Blocks have no dropout: the stages only ever run this part in inference (or, with
`train_mar`, fine-tune it), and a deterministic forward keeps sampling-time and
training-time log-probs of understanding prompts equal.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

LN_EPS = 1e-6
FREQ_DIM = 256  # sinusoidal timestep features fed to the head's time MLP


@dataclasses.dataclass
class MARConfig:
    """Shapes of the MAR part. Defaults are Harmon-1.5B's (`mar_huge`)."""

    token_dim: int = 16  # VAE latent channels x patch_size^2
    patch_size: int = 1
    grid_size: int = 16  # side of the learned position grid (img_size 256 / vae stride 16 / patch)
    buffer_size: int = 64
    encoder_dim: int = 1280
    encoder_depth: int = 20
    encoder_heads: int = 16
    decoder_dim: int = 1280
    decoder_depth: int = 20
    decoder_heads: int = 16
    mlp_ratio: float = 4.0
    head_width: int = 1536
    head_depth: int = 12
    train_steps: int = 1000  # the diffusion process the head was trained on (cosine schedule)

    @property
    def seq_len(self) -> int:
        return self.grid_size**2


# ---------------------------------------------------------------- transformer blocks


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not a multiple of {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        # qkv features are laid out [q | k | v], each split into heads of d / heads.
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = SelfAttention(dim, heads)
        self.mlp_norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


def _resize_grid(table: torch.Tensor, grid: int, hw: tuple[int, int]) -> torch.Tensor:
    """(1, grid*grid, C) position table resized bilinearly to (1, h*w, C)."""
    h, w = hw
    if (h, w) == (grid, grid):
        return table
    c = table.shape[-1]
    image = table.reshape(1, grid, grid, c).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False)
    return image.permute(0, 2, 3, 1).reshape(1, h * w, c)


# ---------------------------------------------------------------- diffusion head


def timestep_features(t: torch.Tensor, dim: int = FREQ_DIM, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features [cos | sin] of (possibly fractional) timesteps, float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    out = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        out = torch.cat([out, torch.zeros_like(out[:, :1])], dim=-1)
    return out


class AdaLNBlock(nn.Module):
    """Residual MLP block whose LayerNorm is shifted/scaled, and output gated, by y."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=LN_EPS)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.modulation = nn.Linear(width, 3 * width)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(F.silu(y)).chunk(3, dim=-1)
        return x + gate * self.mlp(self.norm(x) * (1 + scale) + shift)


class DiffusionHead(nn.Module):
    """eps (and variance interpolation) of a noisy token x_t, given t and a condition."""

    def __init__(self, token_dim: int, cond_dim: int, width: int, depth: int):
        super().__init__()
        self.token_dim = token_dim
        self.time_mlp = nn.Sequential(nn.Linear(FREQ_DIM, width), nn.SiLU(), nn.Linear(width, width))
        self.cond_proj = nn.Linear(cond_dim, width)
        self.x_proj = nn.Linear(token_dim, width)
        self.blocks = nn.ModuleList(AdaLNBlock(width) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, eps=LN_EPS, elementwise_affine=False)
        self.final_modulation = nn.Linear(width, 2 * width)
        self.final_proj = nn.Linear(width, 2 * token_dim)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        dtype = self.x_proj.weight.dtype
        y = self.time_mlp(timestep_features(t).to(dtype)) + self.cond_proj(cond.to(dtype))
        h = self.x_proj(x.to(dtype))
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                h = checkpoint(block, h, y, use_reentrant=False)
            else:
                h = block(h, y)
        shift, scale = self.final_modulation(F.silu(y)).chunk(2, dim=-1)
        return self.final_proj(self.final_norm(h) * (1 + scale) + shift)


def spaced_timesteps(train_steps: int, num_steps: int) -> list[int]:
    """`num_steps` timesteps spread evenly over [0, train_steps - 1] (the IDDPM respacing
    rule for one section: a float stride accumulated and rounded half to even)."""
    if not 2 <= num_steps <= train_steps:
        raise ValueError(f"diffusion steps must be in [2, {train_steps}], got {num_steps}")
    stride = (train_steps - 1) / (num_steps - 1)
    taken, position = [], 0.0
    for _ in range(num_steps):
        taken.append(round(position))
        position += stride
    return sorted(set(taken))


class DiffusionSchedule:
    """Cosine-schedule DDPM respaced to `num_steps`; coefficients computed in float64 and
    used in float32 (as the reference sampler does)."""

    def __init__(self, num_steps: int, train_steps: int = 1000):
        def alpha_bar(s: float) -> float:
            return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

        base = torch.tensor(
            [
                min(1 - alpha_bar((i + 1) / train_steps) / alpha_bar(i / train_steps), 0.999)
                for i in range(train_steps)
            ],
            dtype=torch.float64,
        )
        base_cum = torch.cumprod(1 - base, 0)
        self.timesteps = spaced_timesteps(train_steps, num_steps)  # model time of each spaced step
        betas, last = [], 1.0
        for i in self.timesteps:
            betas.append(1 - float(base_cum[i]) / last)
            last = float(base_cum[i])
        betas = torch.tensor(betas, dtype=torch.float64)
        cum = torch.cumprod(1 - betas, 0)
        cum_prev = torch.cat([torch.ones(1, dtype=torch.float64), cum[:-1]])
        posterior_var = betas * (1 - cum_prev) / (1 - cum)
        coefs = {
            "recip_sqrt_cum": torch.sqrt(1 / cum),
            "recipm1_sqrt_cum": torch.sqrt(1 / cum - 1),
            "mean_x0": betas * torch.sqrt(cum_prev) / (1 - cum),
            "mean_xt": (1 - cum_prev) * torch.sqrt(1 - betas) / (1 - cum),
            # log of the posterior variance, its first (zero) entry replaced by the second
            "min_log_var": torch.log(torch.cat([posterior_var[1:2], posterior_var[1:]])),
            "max_log_var": torch.log(betas),
        }
        self.coefs = {k: v.float() for k, v in coefs.items()}
        self.num_steps = len(self.timesteps)


@torch.no_grad()
def sample_tokens(
    head: DiffusionHead,
    schedule: DiffusionSchedule,
    cond: torch.Tensor,
    noise: torch.Tensor,
    *,
    uncond: torch.Tensor | None = None,
    guidance: float | torch.Tensor = 1.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Tokens (N, token_dim) drawn by ancestral sampling. `noise` is (num_steps + 1, N,
    token_dim): the start x_T, then one draw per step (the last step adds none). With
    `uncond`, the noise prediction is uncond + guidance * (cond - uncond); the variance is
    the conditional one."""
    c = {k: v.to(cond.device) for k, v in schedule.coefs.items()}
    x = noise[0].float()
    n = x.shape[0]
    for k, i in enumerate(reversed(range(schedule.num_steps))):
        t = torch.full((n,), schedule.timesteps[i], device=cond.device, dtype=torch.long)
        if uncond is None:
            out = head(x, t, cond).float()
            eps, v = out.split(head.token_dim, dim=-1)
        else:
            both = head(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond])).float()
            eps_c, v = both[:n].split(head.token_dim, dim=-1)
            eps_u = both[n:, : head.token_dim]
            eps = eps_u + guidance * (eps_c - eps_u)
        frac = (v + 1) / 2
        log_var = frac * c["max_log_var"][i] + (1 - frac) * c["min_log_var"][i]
        x0 = c["recip_sqrt_cum"][i] * x - c["recipm1_sqrt_cum"][i] * eps
        x = c["mean_x0"][i] * x0 + c["mean_xt"][i] * x
        if i > 0:
            x = x + torch.exp(0.5 * log_var) * noise[k + 1].float() * temperature
    return x


# ---------------------------------------------------------------- MAR encoder / decoder


class MaskedAutoregressive(nn.Module):
    """MAR encoder and decoder (no class embedding: Harmon conditions through the LLM) and
    the diffusion head. Masks are bool (B, L), True where a token is hidden."""

    def __init__(self, config: MARConfig):
        super().__init__()
        c = self.config = config
        positions = c.seq_len + c.buffer_size
        self.latent_proj = nn.Linear(c.token_dim, c.encoder_dim)
        self.latent_norm = nn.LayerNorm(c.encoder_dim, eps=LN_EPS)
        self.null_condition = nn.Parameter(torch.zeros(1, c.encoder_dim))
        self.encoder_pos = nn.Parameter(torch.zeros(1, positions, c.encoder_dim))
        self.encoder_blocks = nn.ModuleList(
            Block(c.encoder_dim, c.encoder_heads, c.mlp_ratio) for _ in range(c.encoder_depth)
        )
        self.encoder_norm = nn.LayerNorm(c.encoder_dim, eps=LN_EPS)
        self.decoder_proj = nn.Linear(c.encoder_dim, c.decoder_dim)
        self.mask_embedding = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.decoder_pos = nn.Parameter(torch.zeros(1, positions, c.decoder_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_dim, c.decoder_heads, c.mlp_ratio) for _ in range(c.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(c.decoder_dim, eps=LN_EPS)
        self.head_pos = nn.Parameter(torch.zeros(1, c.seq_len, c.decoder_dim))
        self.head = DiffusionHead(c.token_dim, c.decoder_dim, c.head_width, c.head_depth)
        self.gradient_checkpointing = False
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Random initialisation (fresh models and tests; real weights come from a file)."""
        for p in (
            self.null_condition,
            self.mask_embedding,
            self.encoder_pos,
            self.decoder_pos,
            self.head_pos,
        ):
            nn.init.normal_(p, std=std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def dtype(self) -> torch.dtype:
        return self.latent_proj.weight.dtype

    def set_gradient_checkpointing(self, on: bool) -> None:
        self.gradient_checkpointing = on
        self.head.gradient_checkpointing = on

    def _run(self, blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def _with_buffer(self, mask: torch.Tensor) -> torch.Tensor:
        return torch.cat([mask.new_zeros(mask.shape[0], self.config.buffer_size), mask], dim=1)

    def _positions(self, table: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        buffer, grid = table.split([self.config.buffer_size, self.config.seq_len], dim=1)
        return torch.cat([buffer, _resize_grid(grid, self.config.grid_size, hw)], dim=1)

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor | None, hw: tuple[int, int]) -> torch.Tensor:
        """(B, L, token_dim) tokens -> (B, buffer + visible, encoder_dim), buffer first."""
        b, length, _ = tokens.shape
        if length != hw[0] * hw[1]:
            raise ValueError(f"{length} tokens do not fill a {hw[0]}x{hw[1]} grid")
        x = self.latent_proj(tokens.to(self.dtype))
        buffer = self.null_condition.to(x.dtype).expand(b, self.config.buffer_size, -1)
        x = torch.cat([buffer, x], dim=1) + self._positions(self.encoder_pos, hw)
        x = self.latent_norm(x)
        if mask is not None and bool(mask.any()):
            keep = ~self._with_buffer(mask.bool())
            x = x[keep].view(b, -1, x.shape[-1])  # every row keeps the same number of tokens
        return self.encoder_norm(self._run(self.encoder_blocks, x))

    def decode(self, x: torch.Tensor, mask: torch.Tensor | None, hw: tuple[int, int]) -> torch.Tensor:
        """Encoder output -> (B, L, decoder_dim) conditions for the diffusion head."""
        x = self.decoder_proj(x)
        b, d = x.shape[0], x.shape[-1]
        length = hw[0] * hw[1]
        if mask is not None and bool(mask.any()):
            keep = ~self._with_buffer(mask.bool())
            full = self.mask_embedding.to(x.dtype).expand(b, length + self.config.buffer_size, d).clone()
            full[keep] = x.reshape(-1, d)
            x = full
        x = x + self._positions(self.decoder_pos, hw)
        x = self.decoder_norm(self._run(self.decoder_blocks, x))
        return x[:, self.config.buffer_size :] + _resize_grid(self.head_pos, self.config.grid_size, hw)


def patchify(latents: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) latents -> (B, (H/p)(W/p), C*p*p) tokens, channel-major in a patch."""
    b, c, h, w = latents.shape
    x = latents.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: torch.Tensor, p: int, hw: tuple[int, int]) -> torch.Tensor:
    b = tokens.shape[0]
    h, w = hw
    c = tokens.shape[-1] // (p * p)
    x = tokens.reshape(b, h, w, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h * p, w * p)
