"""The official Harmon checkpoint layout, mapped onto this package's modules.

Official files (repository wusize/Harmon; names checked against the public module code,
not yet against a downloaded checkpoint):

- `harmon_1.5b.pth` (or `harmon_0.5b.pth`): a state dict of the whole `Harmon` module
  minus the VAE, keys prefixed `llm.` (a Qwen2ForCausalLM: `llm.model.layers.0...`,
  `llm.lm_head.weight`), `mar.` (the MAR module), `proj_in.` and `proj_out.` (two-layer
  MLPs `Linear, SiLU, Linear`: indices 0 and 2, the same in our modules).
- `kl16.ckpt`: the KL-16 VAE in latent-diffusion naming, under a "model" key.
- the Qwen2.5-Instruct folder in Hugging Face layout (config, tokenizer; weights too, or
  they come from the `llm.` keys of the .pth).

MAR naming (their `mar.X` -> our `MaskedAutoregressive` parameter):

    z_proj                      -> latent_proj
    z_proj_ln                   -> latent_norm
    fake_latent                 -> null_condition
    encoder_pos_embed_learned   -> encoder_pos
    encoder_blocks.N.norm1      -> encoder_blocks.N.attn_norm     (timm ViT Block)
    encoder_blocks.N.attn.qkv   -> encoder_blocks.N.attn.qkv
    encoder_blocks.N.attn.proj  -> encoder_blocks.N.attn.out
    encoder_blocks.N.norm2      -> encoder_blocks.N.mlp_norm
    encoder_blocks.N.mlp.fc1    -> encoder_blocks.N.mlp.up
    encoder_blocks.N.mlp.fc2    -> encoder_blocks.N.mlp.down
    encoder_norm                -> encoder_norm
    decoder_embed               -> decoder_proj
    mask_token                  -> mask_embedding
    decoder_pos_embed_learned   -> decoder_pos
    decoder_blocks.N.*          -> decoder_blocks.N.*             (as the encoder blocks)
    decoder_norm                -> decoder_norm
    diffusion_pos_embed_learned -> head_pos
    diffloss.net.time_embed.mlp.{0,2}          -> head.time_mlp.{0,2}
    diffloss.net.cond_embed                    -> head.cond_proj
    diffloss.net.input_proj                    -> head.x_proj
    diffloss.net.res_blocks.N.in_ln            -> head.blocks.N.norm
    diffloss.net.res_blocks.N.mlp.{0,2}        -> head.blocks.N.mlp.{0,2}
    diffloss.net.res_blocks.N.adaLN_modulation.1 -> head.blocks.N.modulation
    diffloss.net.final_layer.adaLN_modulation.1  -> head.final_modulation
    diffloss.net.final_layer.linear            -> head.final_proj
    class_emb                   -> (dropped: ImageNet class embedding, unused by Harmon)

Shapes are read from the tensors (widths, depths, grid, buffer); head counts are not in
the weights and come from the public variants: width 768 -> 12 heads (`mar_base`), 1024
and 1280 -> 16 (`mar_large`, `mar_huge`).

VAE naming (latent-diffusion `Encoder`/`Decoder` -> `diffusers.AutoencoderKL`):

    {enc,dec}oder.conv_in / norm_out / conv_out -> conv_in / conv_norm_out / conv_out
    encoder.down.I.block.J                   -> encoder.down_blocks.I.resnets.J
    encoder.down.I.attn.J.{norm,q,k,v,proj_out} -> encoder.down_blocks.I.attentions.J.
                                                {group_norm,to_q,to_k,to_v,to_out.0}
    encoder.down.I.downsample.conv           -> encoder.down_blocks.I.downsamplers.0.conv
    {enc,dec}oder.mid.block_{1,2}            -> mid_block.resnets.{0,1}
    {enc,dec}oder.mid.attn_1                 -> mid_block.attentions.0
    decoder.up.I.block.J                     -> decoder.up_blocks.(levels-1-I).resnets.J
    decoder.up.I.upsample.conv               -> decoder.up_blocks.(levels-1-I).upsamplers.0.conv
    resnet nin_shortcut                      -> conv_shortcut
    quant_conv / post_quant_conv             -> quant_conv / post_quant_conv
Attention projections are 1x1 convolutions there and linear layers here (weights
squeezed). KL-16 has attention in the encoder's last level (its 16 px resolution at 256
px training size) and none in the decoder's up path: `AttnDownEncoderBlock2D` there.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from seer.models.harmon.mar import MARConfig
from seer.models.interface import ModelError

HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16}

_BLOCK = {
    "norm1": "attn_norm",
    "attn.qkv": "attn.qkv",
    "attn.proj": "attn.out",
    "norm2": "mlp_norm",
    "mlp.fc1": "mlp.up",
    "mlp.fc2": "mlp.down",
}
_TOP = {
    "z_proj": "latent_proj",
    "z_proj_ln": "latent_norm",
    "fake_latent": "null_condition",
    "encoder_pos_embed_learned": "encoder_pos",
    "encoder_norm": "encoder_norm",
    "decoder_embed": "decoder_proj",
    "mask_token": "mask_embedding",
    "decoder_pos_embed_learned": "decoder_pos",
    "decoder_norm": "decoder_norm",
    "diffusion_pos_embed_learned": "head_pos",
}
_HEAD = {
    "time_embed.mlp.0": "time_mlp.0",
    "time_embed.mlp.2": "time_mlp.2",
    "cond_embed": "cond_proj",
    "input_proj": "x_proj",
    "final_layer.adaLN_modulation.1": "final_modulation",
    "final_layer.linear": "final_proj",
}
_HEAD_BLOCK = {"in_ln": "norm", "mlp.0": "mlp.0", "mlp.2": "mlp.2", "adaLN_modulation.1": "modulation"}
DROPPED_MAR = ("class_emb.",)


def _split_param(key: str) -> tuple[str, str]:
    module, _, param = key.rpartition(".")
    return module, param


def mar_key_to_ours(key: str) -> str | None:
    """Our parameter name for an official `mar.` key (without the prefix); None if dropped."""
    if key.startswith(DROPPED_MAR):
        return None
    if key in _TOP:  # bare parameters
        return _TOP[key]
    module, param = _split_param(key)
    if module in _TOP:
        return f"{_TOP[module]}.{param}"
    m = re.fullmatch(r"(encoder|decoder)_blocks\.(\d+)\.(.+)", module)
    if m and m[3] in _BLOCK:
        return f"{m[1]}_blocks.{m[2]}.{_BLOCK[m[3]]}.{param}"
    if module.startswith("diffloss.net."):
        inner = module[len("diffloss.net.") :]
        if inner in _HEAD:
            return f"head.{_HEAD[inner]}.{param}"
        m = re.fullmatch(r"res_blocks\.(\d+)\.(.+)", inner)
        if m and m[2] in _HEAD_BLOCK:
            return f"head.blocks.{m[1]}.{_HEAD_BLOCK[m[2]]}.{param}"
    raise ModelError(f"unexpected MAR weight '{key}' in the Harmon checkpoint")


_INV_TOP = {v: k for k, v in _TOP.items()}
_INV_BLOCK = {v: k for k, v in _BLOCK.items()}
_INV_HEAD = {v: k for k, v in _HEAD.items()}
_INV_HEAD_BLOCK = {v: k for k, v in _HEAD_BLOCK.items()}


def mar_key_to_official(key: str) -> str:
    """The inverse of `mar_key_to_ours` (for writing official-layout files)."""
    if key in _INV_TOP:
        return _INV_TOP[key]
    module, param = _split_param(key)
    if module in _INV_TOP:
        return f"{_INV_TOP[module]}.{param}"
    m = re.fullmatch(r"(encoder|decoder)_blocks\.(\d+)\.(.+)", module)
    if m:
        return f"{m[1]}_blocks.{m[2]}.{_INV_BLOCK[m[3]]}.{param}"
    inner = module.removeprefix("head.")
    if inner in _INV_HEAD:
        return f"diffloss.net.{_INV_HEAD[inner]}.{param}"
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", inner)
    if m is None or m[2] not in _INV_HEAD_BLOCK:
        raise KeyError(key)
    return f"diffloss.net.res_blocks.{m[1]}.{_INV_HEAD_BLOCK[m[2]]}.{param}"


def mar_state_to_ours(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official MAR weights (keys without `mar.`) under our names."""
    out = {}
    for key, value in official.items():
        ours = mar_key_to_ours(key)
        if ours is not None:
            out[ours] = value
    return out


def infer_mar_config(official: dict[str, torch.Tensor], heads: int | None = None) -> MARConfig:
    """The MAR shapes read from official weights (keys without `mar.`)."""
    try:
        token_dim, enc = official["z_proj.weight"].shape[1], official["z_proj.weight"].shape[0]
        dec = official["decoder_embed.weight"].shape[0]
        seq_len = official["diffusion_pos_embed_learned"].shape[1]
        buffer = official["encoder_pos_embed_learned"].shape[1] - seq_len
        hidden = official["encoder_blocks.0.mlp.fc1.weight"].shape[0]
        head_width = official["diffloss.net.input_proj.weight"].shape[0]
    except KeyError as err:
        raise ModelError(f"the Harmon checkpoint has no MAR weight {err.args[0]}") from None
    grid = int(round(seq_len**0.5))
    if grid * grid != seq_len:
        raise ModelError(f"the MAR position table has {seq_len} entries, not a square grid")

    def depth(pattern: str) -> int:
        return len({int(m[1]) for k in official if (m := re.match(pattern, k))})

    def head_count(width: int) -> int:
        return heads or HEADS_BY_WIDTH.get(width, max(width // 64, 1))

    return MARConfig(
        token_dim=token_dim,
        patch_size=1,
        grid_size=grid,
        buffer_size=buffer,
        encoder_dim=enc,
        encoder_depth=depth(r"encoder_blocks\.(\d+)\."),
        encoder_heads=head_count(enc),
        decoder_dim=dec,
        decoder_depth=depth(r"decoder_blocks\.(\d+)\."),
        decoder_heads=head_count(dec),
        mlp_ratio=hidden / enc,
        head_width=head_width,
        head_depth=depth(r"diffloss\.net\.res_blocks\.(\d+)\."),
    )


def split_harmon_state(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """{'llm': ..., 'mar': ..., 'proj_in': ..., 'proj_out': ...} with prefixes removed;
    other keys (e.g. `vae.` if a file carries them) are ignored."""
    parts: dict[str, dict[str, torch.Tensor]] = {p: {} for p in ("llm", "mar", "proj_in", "proj_out")}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in parts:
            parts[head][rest] = value
    return parts


# ---------------------------------------------------------------- VAE


def vae_key_to_diffusers(key: str, levels: int) -> str | None:
    """diffusers AutoencoderKL name of a latent-diffusion VAE key; None for keys that are
    not weights of the autoencoder (e.g. a training loss's discriminator)."""
    if key.startswith(("quant_conv.", "post_quant_conv.")):
        return key
    part, _, rest = key.partition(".")
    if part not in ("encoder", "decoder"):
        return None
    rules = [
        (r"(conv_in|conv_out)\.(.+)", lambda m: f"{m[1]}.{m[2]}"),
        (r"norm_out\.(.+)", lambda m: f"conv_norm_out.{m[1]}"),
        (r"mid\.block_([12])\.(.+)", lambda m: f"mid_block.resnets.{int(m[1]) - 1}.{_resnet(m[2])}"),
        (r"mid\.attn_1\.(.+)", lambda m: f"mid_block.attentions.0.{_attention(m[1])}"),
        (r"down\.(\d+)\.block\.(\d+)\.(.+)", lambda m: f"down_blocks.{m[1]}.resnets.{m[2]}.{_resnet(m[3])}"),
        (
            r"down\.(\d+)\.attn\.(\d+)\.(.+)",
            lambda m: f"down_blocks.{m[1]}.attentions.{m[2]}.{_attention(m[3])}",
        ),
        (r"down\.(\d+)\.downsample\.conv\.(.+)", lambda m: f"down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"),
        (
            r"up\.(\d+)\.block\.(\d+)\.(.+)",
            lambda m: f"up_blocks.{levels - 1 - int(m[1])}.resnets.{m[2]}.{_resnet(m[3])}",
        ),
        (
            r"up\.(\d+)\.attn\.(\d+)\.(.+)",
            lambda m: f"up_blocks.{levels - 1 - int(m[1])}.attentions.{m[2]}.{_attention(m[3])}",
        ),
        (
            r"up\.(\d+)\.upsample\.conv\.(.+)",
            lambda m: f"up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}",
        ),
    ]
    for pattern, name in rules:
        m = re.fullmatch(pattern, rest)
        if m:
            return f"{part}.{name(m)}"
    raise ModelError(f"unexpected VAE weight '{key}' in kl16.ckpt")


def _resnet(rest: str) -> str:
    return rest.replace("nin_shortcut", "conv_shortcut")


def _attention(rest: str) -> str:
    module, _, param = rest.rpartition(".")
    names = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
    if module not in names:
        raise ModelError(f"unexpected VAE attention weight '{rest}'")
    return f"{names[module]}.{param}"


def vae_state_to_diffusers(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        name = vae_key_to_diffusers(key, levels)
        if name is None:
            continue
        if ".attentions." in name and name.endswith("weight") and value.ndim == 4:
            value = value[:, :, 0, 0]  # 1x1 convolution -> linear
        out[name] = value
    return out


def kl16_vae_config(
    latent_channels: int = 16,
    base: int = 128,
    mults=(1, 1, 2, 2, 4),
    layers_per_block: int = 2,
    norm_groups: int = 32,
    sample_size: int = 256,
) -> dict:
    """diffusers.AutoencoderKL config of the latent-diffusion KL VAE Harmon uses (KL-16:
    five levels, attention only in the encoder's last level and the middle blocks)."""
    levels = len(mults)
    return dict(
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        block_out_channels=tuple(base * m for m in mults),
        layers_per_block=layers_per_block,
        down_block_types=("DownEncoderBlock2D",) * (levels - 1) + ("AttnDownEncoderBlock2D",),
        up_block_types=("UpDecoderBlock2D",) * levels,
        norm_num_groups=norm_groups,
        sample_size=sample_size,
        scaling_factor=0.2325,
        act_fn="silu",
    )


def load_torch_file(path: Path, what: str) -> dict:
    """A pickled state dict, read with `weights_only=True` (no code runs from the file)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is one clear line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{path}: cannot read the {what}: {first}") from None
    if isinstance(obj, dict):
        for wrapper in ("model", "state_dict", "module"):
            if isinstance(obj.get(wrapper), dict) and not any(
                isinstance(v, torch.Tensor) for v in obj.values()
            ):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj:
        raise ModelError(f"{path}: the {what} holds no state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
