"""Contract tests of the Harmon backend on a tiny random configuration (no downloads): a
Qwen2 LM of width 32, a KL VAE of 32 channels, a one-block MAR and a two-block diffusion
head; 16 px images are 4x4 latent tokens + 4 buffer tokens."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config

from seer.models.harmon import HarmonConfig, HarmonUMM, MARConfig, is_harmon_dir, loading
from seer.models.harmon.model import IMAGE_TOKEN
from seer.models.interface import ModelError
from seer.rollout import Prompt, Rollout
from seer.train.grpo import GRPOConfig, GRPOEngine

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Yes No yes no Yes, No. <think> </think> <answer> yes </answer> <answer> no </answer>",
    "Generate an image: a red circle on a blue background. Generate an image.",
    "does the first image match the instruction better than the second image ?",
    "user assistant describe the picture . abcdefgh is there a red circle ?",
] * 20
QUESTION = "does the first image match the instruction better than the second image ?"
TEXT = "a red circle on a blue background"
TINY_MAR = MARConfig(
    token_dim=4,
    grid_size=2,
    buffer_size=4,
    encoder_dim=32,
    encoder_depth=1,
    encoder_heads=2,
    decoder_dim=32,
    decoder_depth=1,
    decoder_heads=2,
    head_width=32,
    head_depth=2,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(32, 32, 32),
    layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2 + ("AttnDownEncoderBlock2D",),
    up_block_types=("UpDecoderBlock2D",) * 3,
    norm_num_groups=32,
    sample_size=16,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE with Qwen2's chat tokens, trained here on a few lines."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
    )


def _build(seed: int = 0, **options) -> HarmonUMM:
    tokenizer = _tokenizer()
    lm = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = HarmonConfig(**{**dict(image_size=16, num_iter=4, diffusion_steps=3, mar=TINY_MAR), **options})
    return HarmonUMM.create(tokenizer, lm, TINY_VAE, config, seed=seed)


@pytest.fixture(scope="module")
def model() -> HarmonUMM:
    return _build().eval()


def _picture(fill: str, background: str, size=(16, 16)) -> Image.Image:
    image = Image.new("RGB", size, background)
    ImageDraw.Draw(image).ellipse((3, 3, size[0] - 4, size[1] - 4), fill=fill)
    return image


@pytest.fixture(scope="module")
def image():
    return _picture("red", "blue")


@pytest.fixture(scope="module")
def other():
    return _picture("green", "white", size=(24, 16))  # not square: padded with grey, as Harmon does


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _near(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    """Equal up to float rounding relative to the largest entry: an untrained diffusion head
    leaves latents of size ~1e5 (its first step divides by sqrt(alpha_bar) ~ 5e-5)."""
    return bool((a - b).abs().max() <= tol * b.abs().max())


def _manual_logits(
    model: HarmonUMM, prompt: str, images: list, prefix: str = "", completion: list[int] = ()
) -> torch.Tensor:
    """One unpadded row through the LM by hand: placeholders replaced by image features."""
    ids = torch.tensor([model.user_turn(prompt, len(images), prefix) + list(completion)])
    slots = ids[0] == IMAGE_TOKEN
    embeds = model.lm.get_input_embeddings()(ids.masked_fill(ids == IMAGE_TOKEN, 0))
    if images:
        embeds[0, slots] = model.image_features(images).reshape(-1, embeds.shape[-1])
    with torch.no_grad():
        return model.lm(inputs_embeds=embeds).logits[0].float()


# ---------------------------------------------------------------- text


def test_generate_text_shapes_and_seed(model, image, other):
    prompts = [QUESTION, "describe the picture ."]
    images = [[image], [image, other]]
    a = model.generate_text(prompts, images, max_new_tokens=6, generator=_seeded(1))
    b = model.generate_text(prompts, images, max_new_tokens=6, generator=_seeded(1))
    assert len(a.texts) == len(a.token_ids) == len(a.logprobs) == len(a.truncated) == 2
    for ids, lps, cut in zip(a.token_ids, a.logprobs, a.truncated, strict=True):
        assert ids.shape == lps.shape and 1 <= len(ids) <= 6
        assert cut == (int(ids[-1]) not in model.stop_ids)
        assert (lps <= 0).all()
    assert all(torch.equal(x, y) for x, y in zip(a.token_ids, b.token_ids, strict=True))
    assert a.texts == b.texts
    c = model.generate_text(prompts, images, max_new_tokens=6, generator=_seeded(2))
    assert any(not torch.equal(x, y) for x, y in zip(a.token_ids, c.token_ids, strict=True))


def test_prompt_layout_is_harmons_chat_template(model):
    ids = model.user_turn("hello", 2, prefix="<think>")
    assert ids.count(IMAGE_TOKEN) == 2 * model.tokens_per_image == 2 * (4 * 4 + 4)
    text = model.tokenizer.decode([i for i in ids if i != IMAGE_TOKEN])
    assert text == "<|im_start|>user\n\n\nhello<|im_end|>\n<|im_start|>assistant\n<think>"
    gen = model.tokenizer.decode(model.generation_ids("a cat"))
    assert gen == "<|im_start|>user\nGenerate an image: a cat.<|im_end|>\n<|im_start|>assistant\n"
    assert "Generate an image.<|im_end|>" in model.tokenizer.decode(model.generation_ids(""))


def test_sampled_logprobs_equal_a_manual_forward_pass(model, image, other):
    samples = model.generate_text(
        [QUESTION], [[image, other]], max_new_tokens=5, generator=_seeded(2), prefix="<think>"
    )
    completion = samples.token_ids[0]
    logits = _manual_logits(model, QUESTION, [image, other], "<think>", completion.tolist())
    start = logits.shape[0] - len(completion)
    manual = F.log_softmax(logits[start - 1 : -1], -1).gather(1, completion[:, None]).squeeze(1)
    assert torch.allclose(samples.logprobs[0], manual, atol=1e-4)
    scored, mask = model.completion_logprobs([QUESTION], [completion], [[image, other]], prefix="<think>")
    assert mask.all()
    assert torch.allclose(scored[0].detach(), manual, atol=1e-4)


def test_completion_logprobs_have_gradient_and_match_each_row_alone(model, image):
    prompts = [QUESTION, "what color is the background ?"]
    yes = model.yes_ids[0]
    completions = [torch.tensor([yes, model.eos_id]), torch.tensor([model.eos_id])]
    logp, mask = model.completion_logprobs(prompts, completions, [[image, image], [image]])
    assert logp.shape == mask.shape == (2, 2)
    assert mask.tolist() == [[True, True], [False, True]]
    assert logp.requires_grad
    logp.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.trainable_parameters())
    model.lm.zero_grad(set_to_none=True)
    alone, _ = model.completion_logprobs(prompts[1:], completions[1:], [[image]])
    assert torch.allclose(alone[0, -1], logp[1, -1], atol=1e-5)  # left padding changes nothing


def test_sampling_temperature_is_applied_when_scoring(model, image):
    samples = model.generate_text(
        [QUESTION], [[image]], max_new_tokens=4, temperature=0.7, generator=_seeded(5)
    )
    logp, _ = model.completion_logprobs([QUESTION], samples.token_ids, [[image]], temperature=0.7)
    assert torch.allclose(logp[0, -len(samples.token_ids[0]) :].detach(), samples.logprobs[0], atol=1e-4)


def test_zero_new_tokens_and_three_images_are_refused(model, image):
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate_text([QUESTION], max_new_tokens=0)
    with pytest.raises(ValueError, match="at most 2"):
        model.p_yes([QUESTION], [[image] * 3])


# ---------------------------------------------------------------- understanding


def test_p_yes_reads_the_next_token_after_the_prompt(model, image, other):
    result = model.p_yes([QUESTION, QUESTION], [[image, other], [other, image]], prefix="<answer>")
    probs = F.softmax(_manual_logits(model, QUESTION, [image, other], "<answer>")[-1], -1)
    yes, no = probs[model.yes_ids].sum(), probs[model.no_ids].sum()
    assert torch.allclose(result.raw_yes[0], yes, atol=1e-6)
    assert torch.allclose(result.raw_no[0], no, atol=1e-6)
    assert torch.allclose(result.p_yes[0], yes / (yes + no), atol=1e-6)
    assert ((result.p_yes > 0) & (result.p_yes < 1)).all()
    assert not torch.allclose(result.raw_yes[0], result.raw_yes[1])  # the two orders are different inputs
    # Per-row prefixes, as the evaluator's own reasoning then "<answer>".
    rows = model.p_yes(
        [QUESTION, QUESTION], [[image, other]] * 2, prefix=["<answer>", "<think> </think> <answer>"]
    )
    assert torch.allclose(rows.raw_yes[0], result.raw_yes[0], atol=1e-6)
    assert not torch.allclose(rows.raw_yes[1], rows.raw_yes[0])


def test_answer_ids_are_the_single_token_spellings(model):
    words = [model.tokenizer.decode([i]) for i in model.yes_ids + model.no_ids]
    assert set(words) <= {"Yes", " Yes", "yes", " yes", "No", " No", "no", " no"}
    assert "Yes" in words and "No" in words


def test_two_images_differ_from_one(model, image, other):
    two = model.p_yes([QUESTION], [[image, other]]).raw_yes
    one = model.p_yes([QUESTION], [[image]]).raw_yes
    swapped = model.p_yes([QUESTION], [[other, image]]).raw_yes
    assert not torch.allclose(two, one) and not torch.allclose(two, swapped)


def test_understanding_reads_the_vae_posterior_mean(model, image, other):
    a = model.encode_latents([image, other])
    assert torch.equal(a, model.encode_latents([image, other]))  # no posterior sample drawn
    with torch.no_grad():
        mean = model.vae.encode(model.pixels([image])).latent_dist.mean
    assert torch.allclose(a[0], mean[0].permute(1, 2, 0).reshape(16, 4) * 0.2325, atol=1e-6)
    feats = model.image_features([image])
    assert feats.shape == (1, model.tokens_per_image, 32)


# ---------------------------------------------------------------- generation


def test_generate_images_is_seeded_and_batched(model):
    texts = [TEXT, "a small green square at the top", ""]
    a = model.generate_images(texts, seed=3)
    b = model.generate_images(texts, seed=3)
    c = model.generate_images(texts, seed=4)
    listed = model.generate_images(texts, seed=[3, 4, 5])
    assert [im.size for im in a] == [(16, 16)] * 3 and all(im.mode == "RGB" for im in a)
    same = lambda x, y: np.array_equal(np.asarray(x), np.asarray(y))  # noqa: E731
    assert all(same(x, y) for x, y in zip(a, b, strict=True))
    assert all(same(x, y) for x, y in zip(a, listed, strict=True))
    assert not all(same(x, y) for x, y in zip(a, c, strict=True))
    latents = model.generate_latents(texts, seed=3, guidance_scale=1.0, temperature=0.5)
    assert latents.shape == (3, 16, 4) and torch.isfinite(latents).all()
    assert not torch.allclose(latents, model.generate_latents(texts, seed=3))  # CFG changes the sample
    with pytest.raises(ValueError, match="seeds"):
        model.generate_images(texts, seed=[1, 2])


def test_an_image_does_not_depend_on_its_batch_mates(model):
    other = "a small green square at the top, on a white background, drawn in pencil"
    together = model.generate_latents([TEXT, other], seed=7)
    alone = model.generate_latents([TEXT], seed=7)
    moved = model.generate_latents([other, TEXT], seed=[8, 7])
    # Equal up to float rounding: padding changes matrix shapes.
    assert _near(together[0], alone[0]) and _near(moved[1], alone[0])
    assert not _near(together[1], alone[0], 1e-2)


def test_generation_schedules_and_step_counts(model):
    for kw in (dict(num_iter=1), dict(num_iter=40)):  # all at once; more steps than tokens
        assert torch.isfinite(model.generate_latents([TEXT], seed=1, **kw)).all()
    linear = _build(cfg_schedule="linear").eval()
    assert torch.isfinite(linear.generate_latents([TEXT], seed=1)).all()


# ---------------------------------------------------------------- training


class ImageLengthStage:
    """Reward = completion length in characters: varies within every group, so a step
    always has non-zero advantages; prompts carry an image so gradients cross the image run."""

    name, prefix, progress_keys = "toy", "", ()

    def __init__(self, image):
        self.image = image

    def batch(self, step: int, n: int) -> list[Prompt]:
        return [Prompt(f"{QUESTION} {step + i}", [self.image]) for i in range(n)]

    def rewards(self, rollout: Rollout, step: int) -> dict[str, torch.Tensor]:
        return {"length": torch.tensor([float(len(c)) for c in rollout.completions])}


@pytest.mark.parametrize("use_lora", [False, True])
def test_grpo_steps_change_the_weights(tmp_path, image, use_lora):
    model = _build()
    cfg = GRPOConfig(
        num_generations=4,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        max_completion_length=4,
        learning_rate=1e-2,
        max_steps=2,
        save_steps=100,
        beta=0.05,
        use_lora=use_lora,
    )
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    mar_before = {k: v.clone() for k, v in model.mar.state_dict().items()}
    engine = GRPOEngine(model, ImageLengthStage(image), cfg, tmp_path)
    records = engine.train()
    assert all(np.isfinite(r["loss"]) for r in records)
    merged = model._merged_lm().state_dict()
    assert any(not torch.equal(lm_before[k], merged[k]) for k in lm_before)
    assert all(torch.equal(v, model.mar.state_dict()[k]) for k, v in mar_before.items())  # MAR stays frozen
    assert (tmp_path / "checkpoint" / "harmon.json").exists()


def test_trainable_parameters_lm_only_or_with_mar():
    base = _build()
    assert {id(p) for p in base.trainable_parameters()} == {id(p) for p in base.lm.parameters()}
    with_mar = _build(train_mar=True)
    names = {id(p) for p in with_mar.mar.parameters()} | {id(p) for p in with_mar.proj_in.parameters()}
    assert names <= {id(p) for p in with_mar.trainable_parameters()}
    assert not any(p.requires_grad for p in with_mar.vae.parameters())


def test_lora_trains_only_attention_adapters(tmp_path, image):
    model = _build()
    total = sum(p.numel() for p in model.trainable_parameters())
    model.enable_lora(r=2)
    trainable = model.trainable_parameters()
    assert 0 < sum(p.numel() for p in trainable) < total / 5
    names = [n for n, p in model.lm.named_parameters() if p.requires_grad]
    assert names and all(re.search(r"\.(q|k|v|o)_proj\.lora_", n) for n in names)
    before = model.p_yes([QUESTION], [[image]]).raw_yes
    optimizer = torch.optim.SGD(trainable, lr=1.0)
    for _ in range(3):
        logp, _ = model.completion_logprobs([QUESTION], [torch.tensor(model.yes_ids[:1])], [[image]])
        (-logp.sum()).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert model.p_yes([QUESTION], [[image]]).raw_yes > before
    assert torch.isfinite(model.generate_latents([TEXT], seed=0)).all()  # generation runs through LoRA
    model.save_pretrained(tmp_path / "merged")
    assert not any("lora" in k for k in HarmonUMM.from_pretrained(tmp_path / "merged").lm.state_dict())


# ---------------------------------------------------------------- weights


def test_save_and_load_round_trip(model, tmp_path, image, other):
    model.save_pretrained(tmp_path / "m")
    assert is_harmon_dir(tmp_path / "m")
    loaded = HarmonUMM.from_pretrained(tmp_path / "m")
    for name, param in model.lm.state_dict().items():
        assert torch.equal(param, loaded.lm.state_dict()[name]), name
    for name, param in model.mar.state_dict().items():
        assert torch.equal(param, loaded.mar.state_dict()[name]), name
    assert loaded.config == model.config
    assert torch.equal(
        model.p_yes([QUESTION], [[image, other]]).p_yes, loaded.p_yes([QUESTION], [[image, other]]).p_yes
    )
    assert torch.equal(model.generate_latents([TEXT], seed=2), loaded.generate_latents([TEXT], seed=2))
    overridden = HarmonUMM.from_pretrained(tmp_path / "m", num_iter=2, dtype="bfloat16")
    assert overridden.config.num_iter == 2 and overridden.dtype == torch.bfloat16
    assert overridden.vae.dtype == torch.bfloat16 and overridden.mar.dtype == torch.bfloat16
    assert torch.isfinite(overridden.p_yes([QUESTION], [[image]]).p_yes).all()


def test_half_precision_save_leaves_the_live_model_exact(model, tmp_path):
    before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    model.save_pretrained(tmp_path / "half", dtype=torch.bfloat16)
    assert all(torch.equal(before[k], v) for k, v in model.lm.state_dict().items())
    size = lambda d: sum(f.stat().st_size for f in d.rglob("*.safetensors"))  # noqa: E731
    model.save_pretrained(tmp_path / "full")
    assert size(tmp_path / "half") < 0.6 * size(tmp_path / "full")
    assert HarmonUMM.from_pretrained(tmp_path / "half").dtype == torch.float32  # CPU default
    assert HarmonUMM.from_pretrained(tmp_path / "half", dtype="bfloat16").dtype == torch.bfloat16


def test_autocast_computes_in_bf16_over_float32_weights(model, tmp_path, image):
    model.save_pretrained(tmp_path / "m")
    mixed = HarmonUMM.from_pretrained(tmp_path / "m", autocast="bfloat16")
    assert mixed.dtype == torch.float32 and mixed.autocast == torch.bfloat16
    a = mixed.p_yes([QUESTION], [[image]]).raw_yes
    assert torch.allclose(a, model.p_yes([QUESTION], [[image]]).raw_yes, rtol=0.1)
    samples = mixed.generate_text([QUESTION], [[image]], max_new_tokens=4, generator=_seeded(0))
    logp, _ = mixed.completion_logprobs([QUESTION], samples.token_ids, [[image]])
    assert logp.requires_grad and torch.allclose(logp[0].detach(), samples.logprobs[0], atol=0.1)
    assert torch.isfinite(mixed.generate_latents([TEXT], seed=0)).all()
    with pytest.raises(ModelError, match="unknown dtype"):
        HarmonUMM.from_pretrained(tmp_path / "m", dtype="fp8")


# The official module names (public Harmon/MAR code: a timm ViT Block per layer, DiffLoss's
# SimpleMLPAdaLN head), written out by hand for the tiny config: 1 encoder and 1 decoder
# block, 2 head blocks.
def _official_mar_keys() -> set[str]:
    wb = ("weight", "bias")
    block = [
        f"{m}.{p}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2") for p in wb
    ]
    keys = {
        "fake_latent",
        "mask_token",
        "encoder_pos_embed_learned",
        "decoder_pos_embed_learned",
        "diffusion_pos_embed_learned",
        "class_emb.weight",
    }
    keys |= {
        f"{m}.{p}"
        for m in ("z_proj", "z_proj_ln", "encoder_norm", "decoder_embed", "decoder_norm")
        for p in wb
    }
    keys |= {f"{side}_blocks.0.{k}" for side in ("encoder", "decoder") for k in block}
    head = [
        "time_embed.mlp.0",
        "time_embed.mlp.2",
        "cond_embed",
        "input_proj",
        "final_layer.linear",
        "final_layer.adaLN_modulation.1",
    ]
    head += [
        f"res_blocks.{i}.{m}" for i in range(2) for m in ("in_ln", "mlp.0", "mlp.2", "adaLN_modulation.1")
    ]
    keys |= {f"diffloss.net.{m}.{p}" for m in head for p in wb}
    return keys


def _to_ldm_vae(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL weights renamed to latent-diffusion names (written here
    independently of the loader, from the latent-diffusion module layout)."""
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    rules = [
        (r"(encoder|decoder)\.conv_norm_out\.(.+)", lambda m: f"{m[1]}.norm_out.{m[2]}"),
        (
            r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)",
            lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}",
        ),
        (
            r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)",
            lambda m: f"{m[1]}.mid.attn_1.{attn[m[2]]}.{m[3]}",
        ),
        (
            r"encoder\.down_blocks\.(\d)\.resnets\.(\d)\.(.+)",
            lambda m: f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}",
        ),
        (
            r"encoder\.down_blocks\.(\d)\.attentions\.(\d)\.(.+)\.(weight|bias)",
            lambda m: f"encoder.down.{m[1]}.attn.{m[2]}.{attn[m[3]]}.{m[4]}",
        ),
        (
            r"encoder\.down_blocks\.(\d)\.downsamplers\.0\.conv\.(.+)",
            lambda m: f"encoder.down.{m[1]}.downsample.conv.{m[2]}",
        ),
        (
            r"decoder\.up_blocks\.(\d)\.resnets\.(\d)\.(.+)",
            lambda m: f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{m[3]}",
        ),
        (
            r"decoder\.up_blocks\.(\d)\.upsamplers\.0\.conv\.(.+)",
            lambda m: f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}",
        ),
        (r"(.+)", lambda m: m[1]),
    ]
    out = {}
    for key, value in state.items():
        for pattern, name in rules:
            m = re.fullmatch(pattern, key)
            if m:
                new = name(m).replace("conv_shortcut", "nin_shortcut")
                if ".attn" in new and new.endswith("weight") and value.ndim == 2:
                    value = value[:, :, None, None]  # latent diffusion: 1x1 convolutions
                out[new] = value
                break
    return out


def _write_official(model: HarmonUMM, folder, with_llm_weights_in_pth: bool = True):
    folder.mkdir()
    state = {}
    if with_llm_weights_in_pth:
        state.update({f"llm.{k}": v for k, v in model.lm.state_dict().items()})
    mar = {loading.mar_key_to_official(k): v for k, v in model.mar.state_dict().items()}
    mar["class_emb.weight"] = torch.randn(10, 32)  # in the release, unused by Harmon
    assert set(mar) == _official_mar_keys()
    state.update({f"mar.{k}": v for k, v in mar.items()})
    state.update({f"proj_in.{k}": v for k, v in model.proj_in.state_dict().items()})
    state.update({f"proj_out.{k}": v for k, v in model.proj_out.state_dict().items()})
    torch.save(state, folder / "harmon_1.5b.pth")
    vae = _to_ldm_vae(model.vae.state_dict(), levels=3)
    assert vae["encoder.down.2.attn.0.q.weight"].shape == (32, 32, 1, 1)
    assert "decoder.up.0.block.1.conv2.weight" in vae and "encoder.mid.attn_1.proj_out.bias" in vae
    torch.save({"model": vae}, folder / "kl16.ckpt")
    llm = folder / "Qwen2.5-1.5B-Instruct"
    if with_llm_weights_in_pth:
        model.lm.config.save_pretrained(llm)
    else:
        model.lm.save_pretrained(llm)
    model.tokenizer.save_pretrained(llm)


@pytest.mark.parametrize("llm_in_pth", [True, False])
def test_official_layout_loads_through_the_key_mapping(model, tmp_path, image, other, llm_in_pth):
    _write_official(model, tmp_path / "official", with_llm_weights_in_pth=llm_in_pth)
    assert is_harmon_dir(tmp_path / "official")
    loaded = HarmonUMM.from_pretrained(
        tmp_path / "official", image_size=16, num_iter=4, diffusion_steps=3, mar_heads=2
    )
    assert loaded.config.mar == TINY_MAR
    for name, param in model.mar.state_dict().items():
        assert torch.equal(param, loaded.mar.state_dict()[name]), name
    for name, param in model.vae.state_dict().items():
        assert torch.equal(param, loaded.vae.state_dict()[name]), name
    assert torch.allclose(
        model.p_yes([QUESTION], [[image, other]]).raw_yes,
        loaded.p_yes([QUESTION], [[image, other]]).raw_yes,
        atol=1e-6,
    )
    assert _near(model.generate_latents([TEXT], seed=4), loaded.generate_latents([TEXT], seed=4))


def test_official_layout_errors_name_what_is_missing(model, tmp_path):
    _write_official(model, tmp_path / "o")
    (tmp_path / "o" / "kl16.ckpt").rename(tmp_path / "kl16.ckpt")
    with pytest.raises(ModelError, match="missing kl16.ckpt") as err:
        HarmonUMM.from_pretrained(tmp_path / "o")
    assert "\n" not in str(err.value)
    (tmp_path / "kl16.ckpt").rename(tmp_path / "o" / "kl16.ckpt")
    for f in (tmp_path / "o" / "Qwen2.5-1.5B-Instruct").iterdir():
        f.unlink()
    with pytest.raises(ModelError, match="language model folder"):
        HarmonUMM.from_pretrained(tmp_path / "o")
    _write_official(model, tmp_path / "p")
    (tmp_path / "p" / "harmon_1.5b.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read the Harmon checkpoint") as err:
        HarmonUMM.from_official(tmp_path / "p")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "missing",
    [
        "harmon.json",
        "llm/config.json",
        "tokenizer/tokenizer.json",
        "vae/config.json",
        "mar/model.safetensors",
    ],
)
def test_incomplete_folder_is_a_one_line_error(model, tmp_path, missing):
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / missing).unlink()
    with pytest.raises(ModelError, match=f"missing {missing}") as err:
        HarmonUMM.from_pretrained(tmp_path / "m")
    assert "\n" not in str(err.value)


def test_missing_folder_corrupt_weights_and_bad_options(model, tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        HarmonUMM.from_pretrained(tmp_path / "nothing")
    model.save_pretrained(tmp_path / "m")
    with pytest.raises(ModelError, match="unknown Harmon option"):
        HarmonUMM.from_pretrained(tmp_path / "m", guidance=2.0)
    (tmp_path / "m" / "mar" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot load the Harmon model") as err:
        HarmonUMM.from_pretrained(tmp_path / "m")
    assert "\n" not in str(err.value)
    assert not is_harmon_dir(tmp_path)


def test_gradient_checkpointing_gives_the_same_logprobs_and_gradients(image):
    plain, ckpt = _build(train_mar=True), _build(train_mar=True, gradient_checkpointing=True)
    completion = [torch.tensor(plain.yes_ids[:1] + [plain.eos_id])]
    grads = []
    for m in (plain, ckpt):
        m.train()
        logp, _ = m.completion_logprobs([QUESTION], completion, [[image]])
        logp.sum().backward()
        # proj_out, the MAR decoder and the head serve generation only: no gradient here.
        grads.append((logp.detach(), [p.grad for p in m.trainable_parameters()]))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-6)
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-5))
    assert ckpt.mar.encoder_blocks[0].attn.qkv.weight.grad.abs().sum() > 0  # gradients reach the MAR encoder


@pytest.mark.parametrize(("options", "lora"), [({"train_mar": True}, False), ({}, True)])
def test_sharded_harmon_computes_and_saves_as_the_whole_one(tmp_path, image, other, check_sharding, options,
                                                            lora):
    """With `train_mar` the MAR part and its projections train, and are sharded with the LM."""
    check_sharding(_build(**options), _build(**options), ["what is it ?", "and these two ?"],
                   [[image], [image, other]], HarmonUMM.from_pretrained, tmp_path, lora=lora)
