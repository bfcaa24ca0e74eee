"""The mini model's image tokenizer: a small VQ-VAE (`diffusers.VQModel`) over palette maps.

Shapes-world images use a fixed palette of named colours, so the tokenizer reads and
writes *palette maps* (one class per pixel) instead of RGB: the encoder sees one-hot
colours, the decoder predicts one colour class per pixel, and training is per-pixel
cross-entropy. That makes reconstructions crisp (no blur to snap back) while the model
stays an ordinary VQ-VAE. A space-to-depth step (2x2 pixels -> channels by default)
before the encoder and after the decoder keeps the convolutions at half the image side,
cheap enough for a CPU; one downsampling block brings the grid to a quarter, so the
default 60 px image is 225 tokens (15x15), one per 4x4 pixels (docs/model.md says why not
fewer, and why 60 px).
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
              channels: tuple[int, ...] = (32, 64), embed_dim: int = 32, local: bool = False) -> dict:
    """A VQModel config over palette maps; with `local` its encoder reads one patch (a 1x1
    input) at a time (`PaletteVQ`)."""
    return dict(
        in_channels=N_COLORS * unshuffle**2, out_channels=N_COLORS * unshuffle**2,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels, layers_per_block=1, latent_channels=embed_dim,
        vq_embed_dim=embed_dim, num_vq_embeddings=codebook_size,
        sample_size=1 if local else size // unshuffle,
        # On a 1x1 input a group norm of 32 groups would normalise every 4 channels on their
        # own and erase what they say; one group is a layer norm over the channels.
        norm_num_groups=1 if local else 32,
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


class PixelChannelNorm(torch.nn.Module):
    """Layer norm over the channels of each position on its own: the encoder's drop-in for
    `GroupNorm`, whose statistics span the whole image. Under group norm a code depends on
    everything in the picture (a plain white region took 39 different codes depending on
    the object elsewhere, and white and navy regions shared codes), so the transformer
    had to predict a hash of the whole image; under this norm a code depends on its
    neighbourhood only. Same parameters as the `GroupNorm` it replaces."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(channels))
        self.bias = torch.nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.movedim(1, -1), (x.shape[1],), self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


def localize_encoder(vq: VQModel) -> VQModel:
    """Swap every group norm of the encoder for a `PixelChannelNorm` (in place)."""
    for name, module in list(vq.encoder.named_modules()):
        if isinstance(module, torch.nn.GroupNorm):
            parent_name, _, attr = name.rpartition(".")
            parent = vq.encoder.get_submodule(parent_name) if parent_name else vq.encoder
            norm = PixelChannelNorm(module.num_channels, module.eps)
            # Keep the scale and shift a loaded folder brought: a fresh norm would drop them.
            norm.load_state_dict(module.state_dict())
            setattr(parent, attr, norm)
    return vq


class PaletteVQ(torch.nn.Module):
    """VQModel wrapped with the palette one-hot input and space-to-depth.

    `local`: the encoder sees every `unshuffle` x `unshuffle` patch on its own, as a 1x1
    input, so a code is a function of its patch alone: equal patches get equal codes
    wherever they stand. A convolutional encoder instead spreads a patch over its
    neighbours' codes: one plain white image took 41 different codes, which the transformer
    then had to predict. The decoder still runs over the whole code grid, so a code need not
    carry what its neighbours tell (the colour of an object's rim is the colour of its
    inside): with 1,024 codes a fully local tokenizer could draw only the 1,024 most
    frequent patches, 88% of them, and reached 93% of pixels.
    """

    def __init__(self, vq: VQModel, unshuffle: int = 4, local: bool = False, local_norm: bool = False):
        super().__init__()
        self.vq = localize_encoder(vq) if local_norm else vq
        self.unshuffle = unshuffle
        self.local = local

    def _in(self, indices: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(indices, N_COLORS).permute(0, 3, 1, 2).float()
        x = F.pixel_unshuffle(onehot, self.unshuffle)
        if self.local:  # B x C x h x w -> (B h w) x C x 1 x 1
            x = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1], 1, 1)
        return x

    def _latents(self, indices: torch.Tensor) -> torch.Tensor:
        """B x D x h x w encoder outputs on the code grid."""
        h = self.vq.encode(self._in(indices)).latents
        if self.local:  # (B h w) x D x 1 x 1 -> B x D x h x w
            b, side = indices.shape[0], indices.shape[1] // self.unshuffle
            h = h.reshape(b, side, side, -1).permute(0, 3, 1, 2)
        return h

    def _out(self, latents: torch.Tensor) -> torch.Tensor:
        h = self.vq.decode(latents, force_not_quantize=True).sample
        return F.pixel_shuffle(h, self.unshuffle)  # B x N_COLORS x H x W logits

    def forward(self, indices: torch.Tensor, quantize: bool = True):
        """Pixel logits, commitment loss and codes; `quantize=False` runs it as a plain
        autoencoder (no codes), which is how training starts."""
        h = self._latents(indices)
        if not quantize:
            return self._out(h), h.new_zeros(()), None
        quant, commit, (_, _, codes) = self.vq.quantize(h)
        return self._out(quant), commit, codes.view(indices.shape[0], -1)

    def patches(self, indices: torch.Tensor) -> torch.Tensor:
        """B x H x W palette maps -> (B h w) x p x p patches, one per code, in code order."""
        p = self.unshuffle
        b, height, width = indices.shape
        return (indices.reshape(b, height // p, p, width // p, p).permute(0, 1, 3, 2, 4).reshape(-1, p, p))

    @torch.no_grad()
    def init_codebook(self, indices: torch.Tensor) -> float:
        """Set the codes to the encodings of the most frequent distinct patches of
        `indices` (a local tokenizer only); returns the share of patches they cover.
        A random codebook collapses onto a handful of codes at once."""
        if not self.local:
            raise ValueError("init_codebook needs a local tokenizer")
        patches = self.patches(indices)
        distinct, counts = torch.unique(patches.flatten(1), dim=0, return_counts=True)
        top = counts.argsort(descending=True)[:self.vq.config.num_vq_embeddings]
        chosen = distinct[top].reshape(-1, self.unshuffle, self.unshuffle)  # each patch a tiny image
        h = self.vq.encode(self._in(chosen)).latents
        self.vq.quantize.embedding.weight.data[:len(top)] = h.flatten(1)
        return float(counts[top].sum() / counts.sum())

    @torch.no_grad()
    def encode(self, indices: torch.Tensor) -> torch.Tensor:
        _, _, (_, _, codes) = self.vq.quantize(self._latents(indices))
        return codes.view(indices.shape[0], -1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        b, n = codes.shape
        side = int(round(n**0.5))
        dim = self.vq.config.vq_embed_dim
        quant = self.vq.quantize.get_codebook_entry(codes.reshape(-1), (b, side, side, dim))
        return self._out(quant).argmax(1)
