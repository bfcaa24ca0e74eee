"""Harmon (arXiv 2503.21979), SEER's base model, behind the `UnifiedModel` interface.

Our own implementation of the architecture and sampler (the public code's licence is
non-commercial): a Qwen2 language model (`transformers`), a MAR encoder/decoder with a
per-token diffusion head (`mar.py`), the KL-16 VAE (`diffusers.AutoencoderKL`) and two
MLPs, `proj_in` (MAR width -> LLM width) and `proj_out` (LLM width -> MAR width).

Sequences (Harmon's template: the Qwen2 chat format with no system turn, as Harmon was
trained; `HarmonConfig.prompt_template`):

    understanding  <|im_start|>user\\n [IMG\\n]* question<|im_end|>\\n<|im_start|>assistant\\n prefix
    generation     <|im_start|>user\\nGenerate an image: text.<|im_end|>\\n<|im_start|>assistant\\n
    unconditional  <|im_start|>user\\nGenerate an image.<|im_end|>\\n<|im_start|>assistant\\n

IMG is a run of placeholder positions (id -200 in the id rows) filled with image features:
pixels (padded to a square with grey 127, resized to `image_size`, in [-1, 1]) -> VAE
posterior *mean* x `vae_scale` -> latent tokens -> MAR encoder (buffer tokens first) ->
`proj_in` -> buffer tokens moved to the end of the run. A 512 px image is 32x32 + 64 =
1088 positions; two images are two runs.

P(Yes) sums the next-token probabilities of the single-token spellings "Yes", " Yes",
"yes", " yes" (and likewise for No) that the tokenizer has: the answer may start a line
("assistant\\n") or follow a tag with or without a space ("<answer> yes"), and a trained
evaluator may write either case. For Qwen2.5 all four are single tokens.

Image generation is masked autoregressive: a random order per image from a
`torch.Generator` seeded with the row's seed (on the model's device; the CFG halves share
it), `num_iter` steps of a cosine mask schedule. Each step: the current tokens pass the
MAR encoder (masked tokens dropped), `proj_in`, the LLM after the cached prompt (the
cache is cut back to the prompt after each step), `proj_out` added to the encoder output,
the MAR decoder; the diffusion head samples the tokens revealed at this step with
temperature and CFG (constant or linear in the revealed fraction). The VAE decodes
latents / `vae_scale`. All noise of row i comes from row i's generator, so an image does
not depend on its batch mates.

Folder layout written by `save_pretrained` (marker file: `harmon.json`): `llm/`
(Qwen2ForCausalLM), `tokenizer/`, `vae/` (AutoencoderKL), `mar/model.safetensors` (keys
`mar.*`, `proj_in.*`, `proj_out.*` in our naming) and `harmon.json` (config). The
official release layout (`harmon_1.5b.pth` + `kl16.ckpt` + the Qwen2.5 folder) loads
through `from_official` (see `loading.py`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from seer.io import atomic_dir, atomic_write_json
from seer.models._hub import quiet_hub_bars
from seer.models._text import completion_logps, left_pad, samples_at_eos
from seer.models.fsdp import full_lm_state, gathered_call, root_call
from seer.models.harmon import loading
from seer.models.harmon.mar import (
    DiffusionSchedule,
    MARConfig,
    MaskedAutoregressive,
    patchify,
    sample_tokens,
    unpatchify,
)
from seer.models.interface import ImageList, ModelError, TextSamples, UnifiedModel, YesNo

CONFIG_FILE = "harmon.json"
OFFICIAL_CHECKPOINTS = ("harmon_1.5b.pth", "harmon_0.5b.pth")
OFFICIAL_VAE = "kl16.ckpt"
IMAGE_TOKEN = -200  # placeholder id of image positions in id rows (never embedded)
IMAGE_SLOT = "<image>"  # where an image run goes in the template's user text
PROMPT_TEMPLATE = "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
YES_SPELLINGS, NO_SPELLINGS = ("Yes", " Yes", "yes", " yes"), ("No", " No", "no", " no")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CFG_SCHEDULES = ("constant", "linear")
GREY = (127, 127, 127)  # square padding colour of non-square images, as Harmon's scripts


@dataclasses.dataclass
class HarmonConfig:
    image_size: int = 512  # pixels, generation and understanding
    guidance_scale: float = 3.0
    cfg_schedule: str = "constant"
    image_temperature: float = 1.0
    num_iter: int = 64  # MAR steps per image
    diffusion_steps: int = 100  # diffusion-head sampling steps per MAR step
    vae_scale: float = 0.2325
    generation_prompt: str = "Generate an image: {text}"
    unconditional_prompt: str = "Generate an image."
    prompt_template: str = PROMPT_TEMPLATE
    gradient_checkpointing: bool = False
    train_mar: bool = False  # trainable_parameters adds the MAR part and the projections
    vae_batch_size: int = 8  # images per VAE encode/decode call
    mar: MARConfig = dataclasses.field(default_factory=MARConfig)

    def validate(self) -> None:
        if self.cfg_schedule not in CFG_SCHEDULES:
            raise ModelError(
                f"cfg_schedule must be one of {', '.join(CFG_SCHEDULES)}, got {self.cfg_schedule!r}"
            )
        if self.num_iter < 1 or self.diffusion_steps < 2 or self.vae_batch_size < 1:
            raise ModelError("num_iter must be >= 1, diffusion_steps >= 2 and vae_batch_size >= 1")
        if "{input}" not in self.prompt_template or "{text}" not in self.generation_prompt:
            raise ModelError("prompt_template needs {input} and generation_prompt needs {text}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> HarmonConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - fields)
        if unknown:
            raise ModelError(f"unknown Harmon option(s): {', '.join(unknown)}")
        raw = dict(raw)
        mar = raw.pop("mar", None)
        if isinstance(mar, dict):
            mar_fields = {f.name for f in dataclasses.fields(MARConfig)}
            bad = sorted(set(mar) - mar_fields)
            if bad:
                raise ModelError(f"unknown MAR option(s): {', '.join(bad)}")
            mar = MARConfig(**mar)
        config = cls(**raw, **({"mar": mar} if mar is not None else {}))
        config.validate()
        return config


def _dtype(value) -> torch.dtype | None:
    if value is None or isinstance(value, torch.dtype):
        return value
    if str(value) in DTYPES:
        return DTYPES[str(value)]
    raise ModelError(f"unknown dtype {value!r} (expected one of: {', '.join(DTYPES)})")


def _device(value) -> torch.device:
    """The given device, else cuda:$LOCAL_RANK when CUDA is available (one GPU per process
    under `accelerate launch` / torchrun), else the CPU."""
    if value is None:
        value = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu"
    return torch.device(value)


def _mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.SiLU(), nn.Linear(hidden, dim_out))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__




def _no_init():
    """Skip random initialisation of weights that a state dict overwrites at once."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older transformers
        return contextlib.nullcontext()
    return no_init_weights()


def is_harmon_dir(path: str | Path) -> bool:
    """Whether `path` holds a Harmon model: ours (harmon.json) or the official release
    (a harmon_*.pth, or kl16.ckpt: loading then names whatever else is missing)."""
    path = Path(path)
    return (
        (path / CONFIG_FILE).exists()
        or (path / OFFICIAL_VAE).exists()
        or _official_checkpoint(path) is not None
    )


def _official_checkpoint(path: Path) -> Path | None:
    for name in OFFICIAL_CHECKPOINTS:
        if (path / name).exists():
            return path / name
    found = sorted(path.glob("harmon_*.pth")) if path.is_dir() else []
    return found[0] if found else None


def _square(image: Image.Image, size: int) -> Image.Image:
    image = image.convert("RGB")
    w, h = image.size
    if w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), GREY)
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return image


class HarmonUMM(UnifiedModel):
    backend = "harmon"

    def __init__(
        self,
        lm: Qwen2ForCausalLM,
        mar: MaskedAutoregressive,
        proj_in: nn.Module,
        proj_out: nn.Module,
        vae: AutoencoderKL,
        tokenizer: PreTrainedTokenizerFast,
        config: HarmonConfig,
        autocast: torch.dtype | None = None,
    ):
        config.validate()
        self.autocast = autocast  # compute dtype over float32 weights (mixed precision), or None
        self.lm, self.mar, self.proj_in, self.proj_out, self.vae = lm, mar, proj_in, proj_out, vae
        self.tokenizer, self.config = tokenizer, config
        vocab = tokenizer.get_vocab()
        for special in ("<|im_start|>", "<|im_end|>"):
            if special not in vocab:
                raise ModelError(f"the tokenizer has no {special} token (not a Qwen2 chat tokenizer)")
        self.eos_id = vocab["<|im_end|>"]
        self.stop_ids = {self.eos_id} | ({vocab["<|endoftext|>"]} if "<|endoftext|>" in vocab else set())
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.yes_ids, self.no_ids = self._answer_ids(YES_SPELLINGS), self._answer_ids(NO_SPELLINGS)
        if not self.yes_ids or not self.no_ids:
            raise ModelError("the tokenizer has no single-token spelling of 'Yes' or of 'No'")
        self.vae_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        side = config.image_size // self.vae_factor
        if side * self.vae_factor != config.image_size or side % config.mar.patch_size:
            raise ModelError(
                f"image_size {config.image_size} does not fit the VAE stride {self.vae_factor} "
                f"and patch size {config.mar.patch_size}"
            )
        self.grid = (side // config.mar.patch_size,) * 2
        if vae.config.latent_channels * config.mar.patch_size**2 != config.mar.token_dim:
            raise ModelError(
                f"the VAE has {vae.config.latent_channels} latent channels; the MAR part expects "
                f"{config.mar.token_dim} per token"
            )
        self.schedule = DiffusionSchedule(config.diffusion_steps, config.mar.train_steps)
        self.vae.eval().requires_grad_(False)
        for part in (self.mar, self.proj_in, self.proj_out):
            part.requires_grad_(config.train_mar)
        self.mar.eval()
        if config.gradient_checkpointing:
            on = getattr(self.lm, "activation_checkpointing_enable", None)  # transformers >= 5.2x
            (on or self.lm.gradient_checkpointing_enable)({"use_reentrant": False})
            self.mar.set_gradient_checkpointing(True)

    def _answer_ids(self, spellings: tuple[str, ...]) -> list[int]:
        ids = []
        for word in spellings:
            enc = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            if len(enc) == 1 and enc[0] not in ids:
                ids.append(enc[0])
        return ids

    # ------------------------------------------------------------ building

    @classmethod
    def create(
        cls,
        tokenizer: PreTrainedTokenizerFast,
        lm_config: Qwen2Config,
        vae_config: dict,
        config: HarmonConfig | None = None,
        seed: int = 0,
        dtype: torch.dtype | str | None = None,
    ) -> HarmonUMM:
        """A freshly initialised model (tests, experiments): random LM, MAR and projections."""
        config = config or HarmonConfig()
        torch.manual_seed(seed)
        lm = Qwen2ForCausalLM(lm_config)
        mar = MaskedAutoregressive(config.mar)
        hidden = lm_config.hidden_size
        proj_in = _mlp(config.mar.encoder_dim, hidden, hidden)
        proj_out = _mlp(hidden, hidden, config.mar.encoder_dim)
        model = cls(lm, mar, proj_in, proj_out, AutoencoderKL(**vae_config), tokenizer, config)
        return model.to(dtype=_dtype(dtype))

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> HarmonUMM:
        for part in (self.lm, self.mar, self.proj_in, self.proj_out):
            part.to(device=device, dtype=dtype)
        if device is not None:
            self.vae.to(device)
        if dtype is not None and dtype != self.vae.dtype:
            from diffusers.utils import logging as df_logging

            level = df_logging.get_verbosity()
            df_logging.set_verbosity_error()  # its "keep some modules in float32" note: none here
            try:
                self.vae.to(dtype=dtype)
            finally:
                df_logging.set_verbosity(level)
        return self

    # ------------------------------------------------------------ weights

    def _merged_lm(self) -> Qwen2ForCausalLM:
        if hasattr(self.lm, "merge_and_unload"):  # peft: save plain weights, loadable anywhere
            return copy.deepcopy(self.lm).merge_and_unload()
        return self.lm

    def _image_side_state(self) -> dict[str, torch.Tensor]:
        state = {f"mar.{k}": v for k, v in self.mar.state_dict().items()}
        state.update({f"proj_in.{k}": v for k, v in self.proj_in.state_dict().items()})
        state.update({f"proj_out.{k}": v for k, v in self.proj_out.state_dict().items()})
        return state

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write llm/, tokenizer/, vae/, mar/ and harmon.json; the folder appears whole or
        not at all. `dtype` casts copies on disk; the live model keeps its precision.
        Sharded: collective (see `UnifiedModel.save_pretrained`)."""
        if self._sharded is not None:
            lm, lm_state = full_lm_state(self._sharded, self.lm)
            side = {
                f"{name}.{k}": v
                for name, part in (("mar", self.mar), ("proj_in", self.proj_in), ("proj_out", self.proj_out))
                for k, v in self._sharded.full_state(part).items()
            }
            if not self._sharded.is_main:
                return
        else:
            lm = self._merged_lm()
            lm_state = lm.state_dict() if dtype else None
            side = self._image_side_state()
        with atomic_dir(directory) as tmp:
            weights = {k: v.to(dtype) for k, v in lm_state.items()} if dtype and lm_state else lm_state
            with quiet_hub_bars():
                lm.save_pretrained(tmp / "llm", state_dict=weights)
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            vae = copy.deepcopy(self.vae)
            (vae.to(dtype) if dtype else vae).save_pretrained(tmp / "vae")
            (tmp / "mar").mkdir()
            state = {k: (v.to(dtype) if dtype else v).detach().contiguous().cpu() for k, v in side.items()}
            save_file(state, str(tmp / "mar" / "model.safetensors"))
            atomic_write_json(tmp / CONFIG_FILE, dataclasses.asdict(self.config))

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        autocast: torch.dtype | str | None = None,
        attn_implementation: str | None = None,
        **options,
    ) -> HarmonUMM:
        """Our layout (harmon.json), or the official release layout (see `from_official`).

        `dtype`: float32 / bfloat16 / float16 weights (default: bfloat16 on CUDA, float32 on
        the CPU); `device`: default cuda:$LOCAL_RANK when CUDA is available, else the CPU;
        `autocast`: bfloat16 / float16 compute over float32 weights (mixed precision, for
        full fine-tuning); `attn_implementation`: the LM's ("sdpa", "eager",
        "flash_attention_2"). Other `options` override `HarmonConfig` keys (e.g.
        `gradient_checkpointing=True`, `num_iter=32`, `train_mar=True`)."""
        runtime = dict(dtype=dtype, device=device, autocast=autocast, attn_implementation=attn_implementation)
        directory = Path(directory)
        if not directory.is_dir():
            raise ModelError(f"{directory}: no such model folder")
        if not (directory / CONFIG_FILE).exists():
            if is_harmon_dir(directory):
                return cls.from_official(directory, **runtime, **options)
            raise ModelError(
                f"{directory}: not a Harmon model folder (missing {CONFIG_FILE}, "
                f"or {OFFICIAL_CHECKPOINTS[0]} and {OFFICIAL_VAE})"
            )
        for part in (
            "llm/config.json",
            "tokenizer/tokenizer.json",
            "vae/config.json",
            "mar/model.safetensors",
        ):
            if not (directory / part).exists():
                raise ModelError(f"{directory}: not a Harmon model folder (missing {part})")
        try:
            raw = json.loads((directory / CONFIG_FILE).read_text())
        except (OSError, ValueError) as err:
            raise ModelError(f"{directory / CONFIG_FILE}: cannot read: {_first_line(err)}") from None
        if isinstance(options.get("mar"), dict) and isinstance(raw.get("mar"), dict):
            options["mar"] = {**raw["mar"], **options["mar"]}
        config = HarmonConfig.from_dict({**raw, **options})
        device = _device(device)
        dtype = _dtype(dtype) or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        try:
            with quiet_hub_bars():
                lm = Qwen2ForCausalLM.from_pretrained(directory / "llm", dtype=dtype, **extra)
            vae = AutoencoderKL.from_pretrained(directory / "vae", torch_dtype=dtype)
            tokenizer = PreTrainedTokenizerFast.from_pretrained(directory / "tokenizer")
            state = load_file(str(directory / "mar" / "model.safetensors"))
        except (OSError, TypeError, ValueError, SafetensorError) as err:
            raise ModelError(f"{directory}: cannot load the Harmon model: {_first_line(err)}") from None
        hidden = lm.config.hidden_size
        with _no_init():
            mar = MaskedAutoregressive(config.mar)
            proj_in = _mlp(config.mar.encoder_dim, hidden, hidden)
            proj_out = _mlp(hidden, hidden, config.mar.encoder_dim)
        for prefix, module in (("mar.", mar), ("proj_in.", proj_in), ("proj_out.", proj_out)):
            _load_part(
                module,
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)},
                f"{directory}/mar/model.safetensors ({prefix.rstrip('.')})",
            )
        tokenizer.padding_side = "left"
        model = cls(lm, mar, proj_in, proj_out, vae, tokenizer, config, autocast=_dtype(autocast))
        return model.to(device, dtype)

    @classmethod
    def from_official(
        cls,
        directory: str | Path,
        *,
        checkpoint: str | None = None,
        llm: str | Path | None = None,
        mar_heads: int | None = None,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        autocast: torch.dtype | str | None = None,
        attn_implementation: str | None = None,
        **options,
    ) -> HarmonUMM:
        """The release layout: `harmon_1.5b.pth` (keys `llm.`, `mar.`, `proj_in.`,
        `proj_out.`), `kl16.ckpt` (VAE) and the Qwen2.5-Instruct folder in HF layout (its
        config and tokenizer; its weights unless the .pth carries `llm.` keys), found at
        `llm`, else `llm/`, else a `Qwen2.5-*` subfolder, else `directory` itself.
        `checkpoint` names the .pth (default harmon_1.5b.pth, else the one harmon_*.pth);
        `mar_heads` overrides the head count read from the MAR width; the other options
        are `from_pretrained`'s."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ModelError(f"{directory}: no such model folder")
        pth = directory / checkpoint if checkpoint else _official_checkpoint(directory)
        if pth is None or not pth.exists():
            raise ModelError(f"{directory}: missing {checkpoint or OFFICIAL_CHECKPOINTS[0]}")
        if not (directory / OFFICIAL_VAE).exists():
            raise ModelError(f"{directory}: missing {OFFICIAL_VAE}")
        candidates = (
            [Path(llm)] if llm else [directory / "llm", *sorted(directory.glob("Qwen2.5-*")), directory]
        )
        llm_dir = next((c for c in candidates if (c / "config.json").exists()), None)
        if llm_dir is None:
            raise ModelError(f"{directory}: missing the Qwen2.5 language model folder (llm/config.json)")
        if not (llm_dir / "tokenizer.json").exists():
            raise ModelError(f"{llm_dir}: missing tokenizer.json")

        parts = loading.split_harmon_state(loading.load_torch_file(pth, "Harmon checkpoint"))
        for name in ("mar", "proj_in", "proj_out"):
            if not parts[name]:
                raise ModelError(f"{pth}: no '{name}.' weights (not a Harmon checkpoint)")
        mar_config = loading.infer_mar_config(parts["mar"], heads=mar_heads)
        config = HarmonConfig.from_dict({**options, "mar": mar_config})
        device = _device(device)
        dtype = _dtype(dtype) or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        try:
            lm_config = Qwen2Config.from_pretrained(llm_dir)
            tokenizer = PreTrainedTokenizerFast.from_pretrained(llm_dir)
            with quiet_hub_bars():
                if parts["llm"]:
                    with _no_init():
                        lm = Qwen2ForCausalLM._from_config(lm_config, dtype=dtype, **extra)
                else:
                    lm = Qwen2ForCausalLM.from_pretrained(llm_dir, dtype=dtype, **extra)
        except (OSError, TypeError, ValueError, SafetensorError) as err:
            raise ModelError(f"{llm_dir}: cannot load the language model: {_first_line(err)}") from None
        if parts["llm"]:
            missing, _ = lm.load_state_dict(parts["llm"], strict=False)
            tied = {"lm_head.weight"} if lm_config.tie_word_embeddings else set()
            missing = [k for k in missing if k not in tied]
            if missing:
                raise ModelError(f"{pth}: the 'llm.' weights miss {len(missing)} keys, e.g. {missing[0]}")
            if lm_config.tie_word_embeddings:
                lm.tie_weights()
        hidden = lm_config.hidden_size
        with _no_init():
            mar = MaskedAutoregressive(mar_config)
            proj_in = _mlp(mar_config.encoder_dim, hidden, hidden)
            proj_out = _mlp(hidden, hidden, mar_config.encoder_dim)
        _load_part(mar, loading.mar_state_to_ours(parts["mar"]), f"{pth} (mar)")
        _load_part(proj_in, parts["proj_in"], f"{pth} (proj_in)")
        _load_part(proj_out, parts["proj_out"], f"{pth} (proj_out)")
        vae = _official_vae(directory / OFFICIAL_VAE)
        tokenizer.padding_side = "left"
        model = cls(lm, mar, proj_in, proj_out, vae, tokenizer, config, autocast=_dtype(autocast))
        return model.to(device, dtype)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.lm.parameters() if p.requires_grad]
        if self.config.train_mar:
            params += [
                p
                for part in (self.mar, self.proj_in, self.proj_out)
                for p in part.parameters()
                if p.requires_grad
            ]
        return params

    def enable_lora(
        self, r: int = 8, alpha: int = 16, dropout: float = 0.0, target_modules: list[str] | None = None
    ) -> None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules or LORA_TARGETS
        )
        with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing`
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.lm = get_peft_model(self.lm, config)

    def fsdp_units(self) -> tuple[list[nn.Module], dict[str, nn.Module]]:
        """The Qwen2 decoder layers; the root holds the LM's embeddings, norm and head, and
        the MAR part with its projections when they train (frozen, they stay whole, as the
        VAE does)."""
        parts: dict[str, nn.Module] = {"lm": self.lm}
        if self.config.train_mar:
            parts |= {"mar": self.mar, "proj_in": self.proj_in, "proj_out": self.proj_out}
        return list(self._backbone().layers), parts

    def train(self, mode: bool = True) -> HarmonUMM:
        self.lm.train(mode)
        for part in (self.mar, self.proj_in, self.proj_out):
            part.train(mode and self.config.train_mar)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype

    def _compute(self):
        """Mixed precision when asked for: float32 weights, bf16/fp16 matmuls."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast)

    def _backbone(self) -> nn.Module:
        """The Qwen2 decoder stack (final norm included), LoRA layers in place if enabled."""
        lm = self.lm.get_base_model() if hasattr(self.lm, "get_base_model") else self.lm
        return lm.model

    # ------------------------------------------------------------ images <-> features

    @property
    def tokens_per_image(self) -> int:
        return self.grid[0] * self.grid[1] + self.config.mar.buffer_size

    def pixels(self, images: ImageList) -> torch.Tensor:
        """(N, 3, S, S) in [-1, 1], on the model's device in the VAE's dtype."""
        size = self.config.image_size
        arrays = np.stack([np.asarray(_square(im, size), dtype=np.float32) for im in images])
        x = torch.from_numpy(arrays).permute(0, 3, 1, 2) / 255 * 2 - 1
        return x.to(self.device, self.vae.dtype)

    @torch.no_grad()
    def encode_latents(self, images: ImageList) -> torch.Tensor:
        """(N, L, token_dim) latent tokens: the VAE posterior mean times `vae_scale`."""
        out = []
        for k in range(0, len(images), self.config.vae_batch_size):
            x = self.pixels(images[k : k + self.config.vae_batch_size])
            mean = self.vae.encode(x).latent_dist.mean
            out.append(patchify(mean.float() * self.config.vae_scale, self.config.mar.patch_size))
        return torch.cat(out)

    def image_features(self, images: ImageList) -> torch.Tensor:
        """(N, tokens_per_image, LLM width): what fills an image run, buffer tokens last.
        Differentiable in the MAR part and `proj_in` only when `train_mar` is on."""
        return self.latent_features(self.encode_latents(images))

    def latent_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Image features of latent tokens (N, L, token_dim): MAR encoder, `proj_in`, buffer last."""
        buffer = self.config.mar.buffer_size
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.train_mar):
            z = self.proj_in(self.mar.encode(tokens, None, self.grid))
            return torch.cat([z[:, buffer:], z[:, :buffer]], dim=1)

    @torch.no_grad()
    def decode_latents(self, tokens: torch.Tensor) -> ImageList:
        latents = unpatchify(tokens.float(), self.config.mar.patch_size, self.grid) / self.config.vae_scale
        images = []
        for k in range(0, len(latents), self.config.vae_batch_size):
            x = self.vae.decode(latents[k : k + self.config.vae_batch_size].to(self.vae.dtype)).sample
            x = torch.clamp(127.5 * x.float() + 128.0, 0, 255).to(torch.uint8)
            images += [Image.fromarray(a, "RGB") for a in x.permute(0, 2, 3, 1).cpu().numpy()]
        return images

    # ------------------------------------------------------------ sequences

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def user_turn(self, prompt: str, n_images: int = 0, prefix: str = "") -> list[int]:
        """Token ids of the whole prompt, each image a run of IMAGE_TOKEN placeholders."""
        text = self.config.prompt_template.format(input=f"{IMAGE_SLOT}\n" * n_images + prompt) + prefix
        pieces = text.split(IMAGE_SLOT)
        if len(pieces) != n_images + 1:
            raise ValueError(f"a prompt may not contain the image slot {IMAGE_SLOT!r} itself: {prompt!r}")
        ids = self.text_ids(pieces[0])
        for piece in pieces[1:]:
            ids += [IMAGE_TOKEN] * self.tokens_per_image + self.text_ids(piece)
        return ids

    def generation_ids(self, text: str | None) -> list[int]:
        """The generation prompt ('Generate an image: text.'); empty text: unconditional."""
        text = (text or "").strip()
        if not text:
            return self.text_ids(self.config.prompt_template.format(input=self.config.unconditional_prompt))
        if text[-1] not in ".!?":
            text += "."
        request = self.config.generation_prompt.format(text=text)
        return self.text_ids(self.config.prompt_template.format(input=request))

    def _prompts(
        self, prompts: list[str], images: list[ImageList] | None, prefix: str | list[str]
    ) -> tuple[list[list[int]], ImageList]:
        if images is not None and len(images) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} image lists")
        prefixes = [prefix] * len(prompts) if isinstance(prefix, str) else list(prefix)
        if len(prefixes) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(prefixes)} prefixes")
        rows, flat = [], []
        for i, prompt in enumerate(prompts):
            row_images = list(images[i]) if images is not None else []
            if len(row_images) > 2:
                raise ValueError(f"prompt {i} has {len(row_images)} images; at most 2")
            rows.append(self.user_turn(prompt, len(row_images), prefixes[i]))
            flat += row_images
        return rows, flat

    def _left_pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return left_pad(rows, self.pad_id, self.device)

    @root_call
    def embed(self, ids: torch.Tensor, images: ImageList = ()) -> torch.Tensor:
        """Word embeddings, image features at the IMAGE_TOKEN positions (row by row, in the
        order the images are given)."""
        with self._compute():
            is_image = ids == IMAGE_TOKEN
            embeds = self.lm.get_input_embeddings()(ids.masked_fill(is_image, self.pad_id))
            n_slots = int(is_image.sum())
            if n_slots != len(images) * self.tokens_per_image:
                raise ValueError(f"{n_slots} image positions for {len(images)} images")
            if images:
                feats = self.image_features(list(images)).to(embeds.dtype)
                embeds = embeds.masked_scatter(is_image[..., None].expand_as(embeds), feats)
            return embeds

    @root_call
    def forward_logits(
        self,
        embeds: torch.Tensor | None,
        mask: torch.Tensor,
        *,
        ids: torch.Tensor | None = None,
        cache=None,
        keep: int = 0,
        use_cache: bool = False,
    ):
        """Logits (and the KV cache) for left-padded rows; `mask` covers cached positions
        too, and positions count real tokens only, so padding never shifts them."""
        width = (embeds if embeds is not None else ids).shape[1]
        positions = (mask.cumsum(1) - 1).clamp(min=0)[:, -width:]
        with self._compute():
            out = self.lm(
                input_ids=ids,
                inputs_embeds=embeds,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=use_cache or cache is not None,
                logits_to_keep=keep,
            )
        return out.logits, out.cache

    # ------------------------------------------------------------ text

    @torch.no_grad()
    @gathered_call
    def generate_text(
        self,
        prompts,
        images=None,
        *,
        max_new_tokens=64,
        temperature=1.0,
        top_k=None,
        generator=None,
        prefix="",
    ) -> TextSamples:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        rows, flat = self._prompts(prompts, images, prefix)
        ids, mask = self._left_pad(rows)
        logits, cache = self.forward_logits(self.embed(ids, flat), mask, keep=1, use_cache=True)
        n = len(prompts)
        stops = torch.tensor(sorted(self.stop_ids | {self.eos_id}))
        done = torch.zeros(n, dtype=torch.bool)
        sampled, logps = [], []
        for _ in range(max_new_tokens):
            step = logits[:, -1].float() / max(temperature, 1e-6)
            if top_k is not None:
                kth = step.topk(top_k, dim=-1).values[:, -1:]
                step = step.masked_fill(step < kth, float("-inf"))
            logp = F.log_softmax(step, dim=-1)
            where = generator.device if generator is not None else logp.device
            token = torch.multinomial(logp.exp().to(where), 1, generator=generator).squeeze(1).to(logp.device)
            token = torch.where(done.to(token.device), torch.full_like(token, self.pad_id), token)
            sampled.append(token.cpu())
            logps.append(logp.gather(1, token[:, None]).squeeze(1).cpu())
            done |= torch.isin(token.cpu(), stops)
            if done.all():
                break
            mask = torch.cat([mask, (~done).long()[:, None].to(mask.device)], dim=1)
            logits, cache = self.forward_logits(None, mask, ids=token[:, None], cache=cache, keep=1)
        tokens, lps = torch.stack(sampled, 1), torch.stack(logps, 1)
        return samples_at_eos(tokens, lps, self.eos_id, self.decode_text)

    def decode_text(self, token_ids: torch.Tensor) -> str:
        ids = [int(t) for t in token_ids if int(t) not in self.stop_ids | {self.eos_id, self.pad_id}]
        return self.tokenizer.decode(ids, skip_special_tokens=False).strip()

    @root_call
    def completion_logprobs(
        self, prompts, completions, images=None, prefix="", temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        heads, flat = self._prompts(prompts, images, prefix)
        ids, mask = self._left_pad([h + c.tolist() for h, c in zip(heads, completions, strict=True)])
        width = max(len(c) for c in completions)
        if width == 0:
            empty = torch.zeros((len(heads), 0), device=ids.device)
            return empty, empty.bool()
        logits, _ = self.forward_logits(self.embed(ids, flat), mask, keep=width + 1)
        return completion_logps(logits, ids, completions, temperature)

    @torch.no_grad()
    @gathered_call
    def p_yes(self, questions, images, prefix="") -> YesNo:
        rows, flat = self._prompts(questions, images, prefix)
        ids, mask = self._left_pad(rows)
        logits, _ = self.forward_logits(self.embed(ids, flat), mask, keep=1)
        probs = F.softmax(logits[:, -1].float(), dim=-1)
        yes, no = probs[:, self.yes_ids].sum(1), probs[:, self.no_ids].sum(1)
        return YesNo(yes / (yes + no).clamp(min=1e-12), yes, no)

    # ------------------------------------------------------------ images

    def _conditions(
        self, tokens: torch.Tensor, mask: torch.Tensor, cache, prompt_mask: torch.Tensor
    ) -> torch.Tensor:
        """One MAR step: encoder -> proj_in -> LLM after the cached prompt -> proj_out
        residual -> decoder; (rows, L, decoder width) diffusion conditions."""
        buffer = self.config.mar.buffer_size
        x = self.mar.encode(tokens, mask, self.grid)
        z = self.proj_in(x)
        z = torch.cat([z[:, buffer:], z[:, :buffer]], dim=1).to(self.dtype)
        full = torch.cat([prompt_mask, prompt_mask.new_ones(z.shape[0], z.shape[1])], dim=1)
        positions = (full.cumsum(1) - 1).clamp(min=0)[:, -z.shape[1] :]
        hidden = self._backbone()(
            inputs_embeds=z, attention_mask=full, position_ids=positions, cache=cache, use_cache=True
        ).last_hidden_state
        hidden = torch.cat([hidden[:, -buffer:], hidden[:, :-buffer]], dim=1)
        x = x + self.proj_out(hidden.to(self.proj_out[0].weight.dtype)).to(x.dtype)
        return self.mar.decode(x, mask, self.grid)

    @torch.no_grad()
    @gathered_call
    def generate_latents(
        self,
        texts: list[str],
        *,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        seed: int | list[int] = 0,
        num_iter: int | None = None,
    ) -> torch.Tensor:
        """(N, L, token_dim) sampled latent tokens (scaled latents, before VAE decoding)."""
        with self._compute():
            return self._generate_latents(
                texts, guidance_scale=guidance_scale, temperature=temperature, seed=seed, num_iter=num_iter
            )

    def _generate_latents(
        self,
        texts: list[str],
        *,
        guidance_scale: float | None = None,
        temperature: float | None = None,
        seed: int | list[int] = 0,
        num_iter: int | None = None,
    ) -> torch.Tensor:
        """`generate_latents` without the compute context."""
        cfg = self.config
        scale = cfg.guidance_scale if guidance_scale is None else guidance_scale
        temperature = cfg.image_temperature if temperature is None else temperature
        num_iter = num_iter or cfg.num_iter
        seeds = [seed + i for i in range(len(texts))] if isinstance(seed, int) else list(seed)
        if len(seeds) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(seeds)} seeds")
        n, device = len(texts), self.device
        length, dim = self.grid[0] * self.grid[1], cfg.mar.token_dim
        if n == 0:
            return torch.zeros((0, length, dim))
        generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
        use_cfg = scale != 1.0
        rows = [self.generation_ids(t) for t in texts] + ([self.generation_ids(None)] * n if use_cfg else [])
        ids, prompt_mask = self._left_pad(rows)
        positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
        cache = self._backbone()(
            inputs_embeds=self.embed(ids), attention_mask=prompt_mask, position_ids=positions, use_cache=True
        ).cache
        prompt_len = ids.shape[1]
        orders = torch.stack([torch.randperm(length, generator=g, device=device) for g in generators])
        tokens = torch.zeros((n, length, dim), device=device)
        mask = torch.ones((n, length), dtype=torch.bool, device=device)
        steps = self.schedule.num_steps
        for step in range(num_iter):
            both = (torch.cat([tokens, tokens]), torch.cat([mask, mask])) if use_cfg else (tokens, mask)
            cond = self._conditions(*both, cache, prompt_mask)
            grown = cache.get_seq_length() - prompt_len
            if grown > 0:
                cache.crop(-grown)
            # Cosine schedule: this many stay masked after the step (at least one is revealed).
            masked_after = math.floor(length * math.cos(math.pi / 2 * (step + 1) / num_iter))
            masked_after = max(1, min(int(mask[0].sum()) - 1, masked_after))
            next_mask = torch.zeros_like(mask).scatter_(1, orders[:, :masked_after], True)
            reveal = mask if step == num_iter - 1 else mask & ~next_mask
            mask = next_mask
            k = int(reveal[0].sum())
            if k == 0:
                continue
            guidance = (
                scale
                if cfg.cfg_schedule == "constant"
                else 1 + (scale - 1) * (length - masked_after) / length
            )
            noise = torch.stack(
                [torch.randn((steps + 1, k, dim), generator=g, device=device) for g in generators], dim=1
            ).view(steps + 1, n * k, dim)
            new = sample_tokens(
                self.mar.head,
                self.schedule,
                cond[:n][reveal],
                noise,
                uncond=cond[n:][reveal] if use_cfg else None,
                guidance=guidance,
                temperature=temperature,
            )
            tokens[reveal] = new
        return tokens

    @gathered_call
    def generate_images(self, texts, *, guidance_scale=None, temperature=None, seed=0) -> ImageList:
        return self.decode_latents(
            self.generate_latents(texts, guidance_scale=guidance_scale, temperature=temperature, seed=seed)
        )


def _load_part(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    if not state:
        raise ModelError(f"{where}: no weights")
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch
        raise ModelError(f"{where}: {_first_line(err)}") from None
    if result.missing_keys:
        raise ModelError(
            f"{where}: {len(result.missing_keys)} weights missing, e.g. {result.missing_keys[0]}"
        )
    if result.unexpected_keys:
        raise ModelError(f"{where}: unexpected weight {result.unexpected_keys[0]}")


def _official_vae(path: Path) -> AutoencoderKL:
    """kl16.ckpt (latent-diffusion naming) as a diffusers AutoencoderKL; the level count,
    widths, blocks per level and latent channels are read from the weights."""
    state = loading.load_torch_file(path, "VAE")
    try:
        levels = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.down."))
        widths = [state[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] for i in range(levels)]
        per_level = 1 + max(int(k.split(".")[4]) for k in state if k.startswith("encoder.down.0.block."))
        latent = state["post_quant_conv.weight"].shape[0]
    except (KeyError, ValueError) as err:
        raise ModelError(f"{path}: not a KL VAE checkpoint ({_first_line(err)})") from None
    config = loading.kl16_vae_config(
        latent_channels=latent,
        base=widths[0],
        mults=tuple(w // widths[0] for w in widths),
        layers_per_block=per_level,
    )
    config["down_block_types"] = tuple(
        "AttnDownEncoderBlock2D"
        if any(k.startswith(f"encoder.down.{i}.attn.") for k in state)
        else "DownEncoderBlock2D"
        for i in range(levels)
    )
    config["up_block_types"] = tuple(
        "AttnUpDecoderBlock2D"
        if any(k.startswith(f"decoder.up.{levels - 1 - i}.attn.") for k in state)
        else "UpDecoderBlock2D"
        for i in range(levels)
    )
    with _no_init():
        vae = AutoencoderKL(**config)
    _load_part(vae, loading.vae_state_to_diffusers(state, levels), f"{path}")
    return vae
