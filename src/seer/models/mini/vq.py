"""The mini model's image tokenizer: a small VQ-VAE (`diffusers.VQModel`) over palette maps.

Shapes-world images use a fixed palette of named colours, so the tokenizer reads and
writes *palette maps* (one class per pixel) instead of RGB: the encoder sees one-hot
colours, the decoder predicts one colour class per pixel, and training is per-pixel
cross-entropy. That makes reconstructions crisp (no blur to snap back) while the model
stays an ordinary VQ-VAE. A space-to-depth step (2x2 pixels -> channels by default)
before the encoder and after the decoder keeps the convolutions at 32x32, cheap enough
for a CPU; one downsampling block brings the grid to 16x16, so a 64 px image is 256
tokens, one per 4x4 pixels (docs/model.md says why not fewer).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import VQModel

from seer.world.analyzer import PALETTE, snap

N_COLORS = len(PALETTE)
PALETTE_RGB = torch.tensor(PALETTE, dtype=torch.uint8)


def vq_config(size: int = 64, unshuffle: int = 2, codebook_size: int = 512,
              channels: tuple[int, ...] = (32, 64), embed_dim: int = 32) -> dict:
    return dict(
        in_channels=N_COLORS * unshuffle**2, out_channels=N_COLORS * unshuffle**2,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels, layers_per_block=1, latent_channels=embed_dim,
        vq_embed_dim=embed_dim, num_vq_embeddings=codebook_size, sample_size=size // unshuffle,
        norm_num_groups=32,
        # Codes stay local (no attention in the middle block): a code says what is in its
        # patch, which is what the transformer can learn to predict from the text.
        mid_block_add_attention=False,
    )


def _rgb_key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_KEYS = _rgb_key(PALETTE.astype(np.int64))
_ORDER = np.argsort(_KEYS)


def to_palette(images: np.ndarray) -> torch.Tensor:
    """B x H x W x 3 uint8 RGB -> B x H x W palette indices (nearest named colour).

    Renders hold palette colours only, so an exact lookup serves them; any other image
    (a photo, a noisy one) is snapped to the nearest colour like the analyzer does."""
    keys = _rgb_key(images)
    where = np.clip(np.searchsorted(_KEYS[_ORDER], keys), 0, len(_KEYS) - 1)
    indices = _ORDER[where]
    for i in np.flatnonzero((_KEYS[indices] != keys).reshape(len(images), -1).any(1)):
        indices[i] = snap(images[i])
    return torch.from_numpy(indices).long()


def to_rgb(indices: torch.Tensor) -> np.ndarray:
    return PALETTE_RGB[indices].numpy()


class PaletteVQ(torch.nn.Module):
    """VQModel wrapped with the palette one-hot input and space-to-depth."""

    def __init__(self, vq: VQModel, unshuffle: int = 4):
        super().__init__()
        self.vq = vq
        self.unshuffle = unshuffle

    def _in(self, indices: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(indices, N_COLORS).permute(0, 3, 1, 2).float()
        return F.pixel_unshuffle(onehot, self.unshuffle)

    def _out(self, h: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(h, self.unshuffle)  # B x N_COLORS x H x W logits

    def forward(self, indices: torch.Tensor):
        h = self.vq.encode(self._in(indices)).latents
        quant, commit, (_, _, codes) = self.vq.quantize(h)
        logits = self._out(self.vq.decode(quant, force_not_quantize=True).sample)
        return logits, commit, codes.view(indices.shape[0], -1)

    @torch.no_grad()
    def encode(self, indices: torch.Tensor) -> torch.Tensor:
        h = self.vq.encode(self._in(indices)).latents
        _, _, (_, _, codes) = self.vq.quantize(h)
        return codes.view(indices.shape[0], -1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        b, n = codes.shape
        side = int(round(n**0.5))
        dim = self.vq.config.vq_embed_dim
        quant = self.vq.quantize.get_codebook_entry(codes.reshape(-1), (b, side, side, dim))
        logits = self._out(self.vq.decode(quant, force_not_quantize=True).sample)
        return logits.argmax(1)
