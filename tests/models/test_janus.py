"""Contract tests of the Janus-Pro backend on a tiny random Janus (no downloaded weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from seer.models.interface import ModelError
from seer.models.janus import JanusUMM, is_janus_dir, tiny_janus
from seer.rollout import Prompt, Rollout
from seer.train.grpo import GRPOConfig, GRPOEngine

QUESTION = "does the first image match the instruction better than the second image ?"


def tiny_janus_dir(tmp_path: Path, seed: int = 0) -> Path:
    """A tiny random Janus folder in Hugging Face layout."""
    path = tmp_path / "janus"
    tiny_janus(path, seed=seed)
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> JanusUMM:
    return tiny_janus(seed=0).eval()


@pytest.fixture(scope="module")
def red():
    image = Image.new("RGB", (40, 30), (220, 30, 30))
    image.paste((250, 250, 250), (5, 5, 15, 15))
    return image


@pytest.fixture(scope="module")
def green():
    image = Image.new("RGB", (32, 32), (20, 200, 60))
    image.paste((0, 0, 0), (20, 2, 30, 30))
    return image


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _manual_logits(model: JanusUMM, prompt: str, images: list, prefix: str = "") -> torch.Tensor:
    """One row through the processor and the model, no adapter code in between: T x V logits."""
    batch = model.processor(text=[model.chat_text(prompt, len(images), prefix)], images=images or None,
                            return_tensors="pt")
    with torch.no_grad():
        return model.model(**batch).logits[0].float()


def test_generate_text_shapes_and_seed(model, red, green):
    prompts = [QUESTION, "describe the picture ."]
    images = [[red], [red, green]]
    a = model.generate_text(prompts, images, max_new_tokens=6, generator=_seeded(1))
    b = model.generate_text(prompts, images, max_new_tokens=6, generator=_seeded(1))
    c = model.generate_text(prompts, images, max_new_tokens=6, generator=_seeded(2))
    assert len(a.texts) == len(a.token_ids) == len(a.logprobs) == len(a.truncated) == 2
    for ids, lps, cut in zip(a.token_ids, a.logprobs, a.truncated, strict=True):
        assert ids.shape == lps.shape and 1 <= len(ids) <= 6
        assert cut == (int(ids[-1]) != model.eos_id)
        assert (lps <= 0).all()
    assert all(torch.equal(x, y) for x, y in zip(a.token_ids, b.token_ids, strict=True))
    assert a.texts == b.texts
    assert not all(torch.equal(x, y) for x, y in zip(a.token_ids, c.token_ids, strict=True))
    # No images at all, and a forced prefix.
    d = model.generate_text(["hello"], max_new_tokens=3, generator=_seeded(1), prefix="<think>")
    assert len(d.token_ids[0]) <= 3


def test_sampled_logprobs_equal_a_manual_forward_and_completion_logprobs(model, red, green):
    temperature, prefix = 0.7, "<think>"
    samples = model.generate_text([QUESTION], [[red, green]], max_new_tokens=5, temperature=temperature,
                                  generator=_seeded(3), prefix=prefix)
    completion = samples.token_ids[0]
    batch = model.processor(text=[model.chat_text(QUESTION, 2, prefix)], images=[red, green],
                            return_tensors="pt")
    ids = torch.cat([batch["input_ids"], completion[None]], dim=1)
    with torch.no_grad():
        logits = model.model(input_ids=ids, pixel_values=batch["pixel_values"]).logits[0].float()
    start = ids.shape[1] - len(completion)
    manual = F.log_softmax(logits[start - 1:-1] / temperature, -1).gather(1, completion[:, None]).squeeze(1)
    assert torch.allclose(samples.logprobs[0], manual, atol=1e-4)
    logp, mask = model.completion_logprobs([QUESTION], [completion], [[red, green]], prefix=prefix,
                                           temperature=temperature)
    assert mask.all() and logp.shape == (1, len(completion))
    assert torch.allclose(logp[0].detach(), samples.logprobs[0], atol=1e-4)


def test_completion_logprobs_have_gradient_and_match_each_row_alone(model, red, green):
    prompts = [QUESTION, "what color is the background ?"]
    completions = [torch.tensor([model.yes_ids[0], model.eos_id]), torch.tensor([model.eos_id])]
    logp, mask = model.completion_logprobs(prompts, completions, [[red, green], [green]])
    assert logp.shape == mask.shape == (2, 2)
    assert mask.tolist() == [[True, True], [False, True]]
    assert logp.requires_grad
    logp.sum().backward()
    params = model.trainable_parameters()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    assert not any(p.requires_grad for p in model.model.model.vision_model.parameters())
    model.model.zero_grad(set_to_none=True)
    # Left padding (the second row is shorter: one image) must not change a row's log-probs.
    alone, _ = model.completion_logprobs(prompts[1:], completions[1:], [[green]])
    assert torch.allclose(alone[0, -1], logp[1, -1], atol=1e-5)


def test_p_yes_reads_the_next_token_after_the_prompt(model, red, green):
    assert [model.tokenizer.decode([i]).strip() for i in model.yes_ids] == ["Yes", "Yes", "yes"]
    result = model.p_yes([QUESTION, QUESTION], [[red, green], [green, red]], prefix=["<answer>", ""])
    probs = F.softmax(_manual_logits(model, QUESTION, [red, green], "<answer>")[-1], -1)
    yes, no = probs[model.yes_ids].sum(), probs[model.no_ids].sum()
    assert torch.allclose(result.raw_yes[0], yes, atol=1e-6)
    assert torch.allclose(result.raw_no[0], no, atol=1e-6)
    assert torch.allclose(result.p_yes[0], yes / (yes + no), atol=1e-6)
    probs = F.softmax(_manual_logits(model, QUESTION, [green, red])[-1], -1)
    assert torch.allclose(result.raw_yes[1], probs[model.yes_ids].sum(), atol=1e-6)
    assert ((result.p_yes > 0) & (result.p_yes < 1)).all()
    assert result.p_yes.shape == result.raw_yes.shape == result.raw_no.shape == (2,)


def test_two_images_change_the_answer_logits(model, red, green):
    one = _manual_logits(model, QUESTION, [red])[-1]
    two = _manual_logits(model, QUESTION, [red, green])[-1]
    swapped = _manual_logits(model, QUESTION, [green, red])[-1]
    assert not torch.allclose(one, two, atol=1e-4)
    assert not torch.allclose(two, swapped, atol=1e-4)
    result = model.p_yes([QUESTION] * 3, [[red], [red, green], [green, red]])
    assert len(set(result.raw_yes.tolist())) == 3


def test_generate_images_is_seeded_and_a_row_ignores_its_batch(model):
    texts = ["a large red circle on the left", "a small green cross", ""]
    a = model.generate_images(texts, seed=3)
    b = model.generate_images(texts, seed=3)
    c = model.generate_images(texts, seed=4)
    assert [im.size for im in a] == [(32, 32)] * 3 and all(im.mode == "RGB" for im in a)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, c, strict=True))
    # Seeds as a list: row i uses seed[i], the same as seed + i.
    d = model.generate_images(texts, seed=[3, 4, 5])
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, d, strict=True))
    # A row's codes depend on its text and seed only, not on longer (padded-against) batch mates.
    short = "a cat"
    long = "a large red circle on the left, a small green cross at the top, on a blue background"
    for scale in (3.0, 1.0):
        alone = model.generate_image_ids([short], seed=[7], guidance_scale=scale)
        batched = model.generate_image_ids([long, short, long + " again"], seed=[1, 7, 2],
                                           guidance_scale=scale)
        assert alone.shape == (1, model.image_tokens) and batched.shape == (3, model.image_tokens)
        assert torch.equal(alone[0], batched[1])
    n_codes = model.model.config.vq_config.num_embeddings
    assert ((batched >= 0) & (batched < n_codes)).all()
    # Guidance changes the image.
    assert not torch.equal(model.generate_image_ids([short], seed=[7], guidance_scale=8.0), alone)


def test_save_and_load_round_trip(model, tmp_path, red, green):
    model.save_pretrained(tmp_path / "m")
    assert is_janus_dir(tmp_path / "m")
    loaded = JanusUMM.from_pretrained(tmp_path / "m", device="cpu")
    assert loaded.device.type == "cpu" and loaded.dtype == torch.float32
    for name, param in model.model.state_dict().items():
        assert torch.equal(param, loaded.model.state_dict()[name]), name
    assert loaded.yes_ids == model.yes_ids and loaded.no_ids == model.no_ids
    a = model.p_yes([QUESTION], [[red, green]]).p_yes
    assert torch.equal(a, loaded.p_yes([QUESTION], [[red, green]]).p_yes)
    x, y = model.generate_images(["a red circle"], seed=1), loaded.generate_images(["a red circle"], seed=1)
    assert np.array_equal(np.asarray(x[0]), np.asarray(y[0]))
    # Saving again over the same folder replaces it whole.
    loaded.save_pretrained(tmp_path / "m")
    assert is_janus_dir(tmp_path / "m")


@pytest.mark.parametrize("missing,named", [
    ("config.json", "config.json"),
    ("model.safetensors", "weights"),
    ("tokenizer.json", "tokenizer"),
    ("processor_config.json", "processor"),
])
def test_missing_files_give_a_one_line_error(tmp_path, missing, named):
    path = tiny_janus_dir(tmp_path)
    (path / missing).unlink()
    with pytest.raises(ModelError) as err:
        JanusUMM.from_pretrained(path)
    message = str(err.value)
    assert "\n" not in message and named in message and str(path) in message


def test_bad_folders_give_a_one_line_error(tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        JanusUMM.from_pretrained(tmp_path / "nowhere")
    path = tiny_janus_dir(tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "multi_modality"}))
    with pytest.raises(ModelError, match="convert"):
        JanusUMM.from_pretrained(path)
    assert not is_janus_dir(path) and not is_janus_dir(tmp_path / "nowhere")
    (path / "config.json").write_text(json.dumps(config))
    (path / "chat_template.jinja").unlink()
    with pytest.raises(ModelError) as err:
        JanusUMM.from_pretrained(path)
    assert "chat template" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelError, match="unknown Janus loading option"):
        JanusUMM.from_pretrained(path, dtipe="bf16")


def test_loading_options_bf16_and_gradient_checkpointing(tmp_path, red):
    path = tiny_janus_dir(tmp_path)
    model = JanusUMM.from_pretrained(path, dtype="bfloat16", device="cpu", gradient_checkpointing=True)
    assert model.dtype == torch.bfloat16
    assert any(getattr(m, "gradient_checkpointing", False) for m in model.lm.modules())
    model.train()
    logp, mask = model.completion_logprobs([QUESTION], [torch.tensor([model.yes_ids[0]])], [[red]])
    assert logp.dtype == torch.float32
    logp.sum().backward()
    assert any(p.grad is not None for p in model.trainable_parameters())
    model.eval()
    samples = model.generate_text([QUESTION], [[red]], max_new_tokens=3, generator=_seeded(0))
    assert len(samples.token_ids[0]) >= 1
    assert model.generate_images(["a"], seed=0)[0].size == (32, 32)
    with pytest.raises(ModelError, match="unknown dtype"):
        JanusUMM.from_pretrained(path, dtype="int3")


def test_mixed_precision_keeps_float32_weights_and_gradients(tmp_path, red):
    path = tiny_janus_dir(tmp_path)
    model = JanusUMM.from_pretrained(path, dtype="float32", autocast="bfloat16", device="cpu")
    assert model.dtype == torch.float32 and model.autocast == torch.bfloat16
    model.train()
    logp, _ = model.completion_logprobs([QUESTION], [torch.tensor([model.yes_ids[0]])], [[red]])
    logp.sum().backward()
    grads = [p.grad for p in model.trainable_parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 for g in grads)
    model.eval()
    full = JanusUMM.from_pretrained(path, device="cpu")  # bf16 compute is close to float32's
    a, b = model.p_yes([QUESTION], [[red]]), full.p_yes([QUESTION], [[red]])
    assert torch.allclose(a.p_yes, b.p_yes, atol=0.05)
    assert model.generate_images(["a"], seed=0)[0].size == (32, 32)


def test_lora_trains_only_adapters_and_saves_merged(tmp_path, red):
    model = tiny_janus(seed=1)
    total = sum(p.numel() for p in model.trainable_parameters())
    model.enable_lora(r=4)
    trainable = model.trainable_parameters()
    assert 0 < sum(p.numel() for p in trainable) < total / 5
    assert all("lora_" in n for n, p in model.lm.named_parameters() if p.requires_grad)
    target = torch.tensor([model.yes_ids[1]])
    before = model.p_yes([QUESTION], [[red]]).raw_yes
    optimizer = torch.optim.SGD(trainable, lr=0.1)
    model.train()
    for _ in range(3):
        logp, _ = model.completion_logprobs([QUESTION], [target], [[red]])
        (-logp.sum()).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    after = model.p_yes([QUESTION], [[red]])
    assert after.raw_yes > before
    model.save_pretrained(tmp_path / "merged")  # LoRA merged into plain weights
    loaded = JanusUMM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in k for k in loaded.model.state_dict())
    assert torch.allclose(loaded.p_yes([QUESTION], [[red]]).raw_yes, after.raw_yes, atol=1e-5)
    # Image generation runs through the wrapped language model too.
    assert model.generate_images(["a"], seed=0)[0].size == (32, 32)


@pytest.mark.parametrize("lora", [False, True])
def test_sharded_janus_computes_and_saves_as_the_whole_one(tmp_path, red, green, check_sharding, lora):
    check_sharding(tiny_janus(seed=0), tiny_janus(seed=0), [QUESTION, "draw a cat"], [[red, green], []],
                   JanusUMM.from_pretrained, tmp_path, lora=lora)


class LetterStage:
    """Reward 1 for a completion that starts with one of a few letters; prompts carry an image."""

    name, prefix, progress_keys = "toy", "", ()

    def __init__(self, image: Image.Image, first: str = "abcdefghi"):
        self.image, self.first = image, first

    def batch(self, step: int, n: int) -> list[Prompt]:
        return [Prompt(f"is there a red circle ? {'yes' if (step + i) % 2 else 'no'}", [self.image])
                for i in range(n)]

    def rewards(self, rollout: Rollout, step: int) -> dict[str, torch.Tensor]:
        hits = [float(c[:1] in self.first and c[:1] != "") for c in rollout.completions]
        return {"hit": torch.tensor(hits)}


@pytest.mark.parametrize("use_lora", [False, True])
def test_grpo_steps_change_the_weights(tmp_path, red, use_lora):
    model = tiny_janus(seed=2)
    cfg = GRPOConfig(num_generations=4, per_device_train_batch_size=8, gradient_accumulation_steps=1,
                     max_completion_length=4, learning_rate=3e-3, max_steps=2, save_steps=2,
                     beta=0.0 if use_lora else 0.05, use_lora=use_lora, lora_r=4)
    before = {n: p.detach().clone() for n, p in model.model.named_parameters()}
    engine = GRPOEngine(model, LetterStage(red), cfg, tmp_path / "run")
    records = engine.train()
    assert len(records) == 2 and all(np.isfinite(r["loss"]) for r in records)
    after = dict(model.plain_state_dict())
    changed = [n for n, p in before.items() if not torch.equal(p, after[n])]
    assert changed and all("language_model" in n or n.startswith("lm_head") for n in changed)
    saved = JanusUMM.from_pretrained(engine.checkpoint_dir)
    for name, value in after.items():
        assert torch.equal(value, saved.model.state_dict()[name]), name
