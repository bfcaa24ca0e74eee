"""Visual Instruction Elaboration (VIE) sets: the triples, their images, the evaluator items.

A VIE sample is a plain prompt P, an abstract instruction I and an elaboration E that
spells I out in concrete visual terms (SEER.md). With the generator frozen, the positive
image is rendered from E and the negative from the baseline text B = "P, I"; the evaluator
(RLVR) is then asked about the two images, in both orders:

    kind        instruction | description   (the question is about I, or about E)
    order       positive_first ([pos, neg], label yes) | negative_first ([neg, pos], label no)

so every sample gives four items. Train items also get a difficulty for the curriculum:
the base evaluator's pass rate over k sampled answers (and, in the shapes world, the
ground-truth margin of the pair). See docs/vie.md for the folder layout.

Triples come from the shapes world (`source: world`, oracle elaborations and ground truth
from the analyzer) or from a user JSONL (real backends; no ground truth). The whole build
is a pure function of the resolved config and the model: the same seed writes the same
bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path
from typing import Any

from PIL import Image

from seer.data import templates as T
from seer.data.formats import yes_no

SPLITS = ("train", "validation", "test_id", "test_ood")
KINDS = ("instruction", "description")
ORDERS = ("positive_first", "negative_first")
LABELS = {"positive_first": T.YES, "negative_first": T.NO}
FORMAT = "seer.vie/1"
MANIFEST = "manifest.json"
USER_FIELDS = ("prompt", "instruction", "elaboration")
_MAX_PROMPT_TRIES = 200


@dataclasses.dataclass
class VIEConfig:
    """What `seer data vie` builds. `out` is where, not what: it is left out of the saved
    config and of its hash, so a set moved or built elsewhere is the same set."""

    out: str = "runs/vie"
    seed: int = 0
    source: str = "world"  # "world", or a JSONL of {prompt, instruction, elaboration[, split]}
    model: str | None = None  # model folder; None: the packaged mini model
    # Keyword arguments for the backend's from_pretrained (dtype, device, gradient_checkpointing, ...).
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_train: int = 300
    n_validation: int = 60
    n_test_id: int = 100
    n_test_ood: int = 100
    batch_size: int = 32  # evaluator items per call when scoring difficulty
    render_batch_size: int = 64  # samples per image call (their positives and negatives together)
    guidance_scale: float | None = None  # None: the model's default
    difficulty_samples: int = 4  # k sampled answers of the base evaluator per train item; 0: skip
    require_margin: bool = True  # world: keep a sample only if pos satisfies I strictly better
    max_draws_per_sample: int = 20
    max_new_tokens: int = 24
    # World: also ask each train pair about another training instruction, labelled by the
    # analyzer (which image meets it better). In the paper's items both question kinds carry
    # the order's label, so an evaluator can score well without reading the question.
    contrast_items: bool = False

    def counts(self) -> dict[str, int]:
        return {split: getattr(self, f"n_{split}") for split in SPLITS}

    def check(self) -> None:
        for split, n in self.counts().items():
            if n < 0:
                raise ValueError(f"n_{split} must be at least 0, got {n}")
        for key in ("batch_size", "render_batch_size", "max_draws_per_sample", "max_new_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.difficulty_samples < 0:
            raise ValueError(f"difficulty_samples must be 0 (skip) or more, got {self.difficulty_samples}")
        if self.guidance_scale is not None and self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be at least 0, got {self.guidance_scale}")
        if self.source != "world" and not Path(self.source).is_file():
            raise ValueError(f"source: {self.source}: no such file (expected 'world' or a JSONL file)")


def saved_config(cfg: VIEConfig) -> dict[str, Any]:
    """The resolved config as written to config.json (everything but `out`)."""
    data = dataclasses.asdict(cfg)
    data.pop("out")
    return data


def config_hash(cfg: VIEConfig) -> str:
    """sha256 of the canonical JSON of the saved config."""
    canonical = json.dumps(saved_config(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def derive_seed(*parts: Any) -> int:
    """A stable 31-bit seed from any parts (Python's hash() is salted per process)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


# ---------------------------------------------------------------- triples

@dataclasses.dataclass
class Triple:
    id: str
    split: str
    prompt: str
    instruction: str
    elaboration: str
    instruction_split: str  # train | heldout | composition | user
    instruction_difficulty: str | None
    draw: int = 0
    rule: Any = None  # world: the Instruction (its ground-truth check)
    scene: Any = None  # world: the prompt's Scene

    @property
    def baseline(self) -> str:
        return T.baseline_text(self.prompt, self.instruction)


def sample_id(split: str, index: int) -> str:
    return f"{split}-{index:05d}"


def read_user_jsonl(path: str | Path) -> dict[str, list[Triple]]:
    """Triples of a user JSONL, per split; ValueError names the file, line and field."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read ({err.__class__.__name__})") from None
    rows: dict[str, list[Triple]] = {split: [] for split in SPLITS}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg}, column {err.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object with fields {', '.join(USER_FIELDS)}")
        for field in USER_FIELDS:
            if field not in row:
                raise ValueError(f"{where}: missing field '{field}' (expected a non-empty string)")
            if not isinstance(row[field], str) or not row[field].strip():
                raise ValueError(f"{where}: field '{field}' must be a non-empty string")
        split = row.get("split", "train")
        if split not in SPLITS:
            raise ValueError(f"{where}: field 'split' must be one of {', '.join(SPLITS)}, got {split!r}")
        difficulty = row.get("difficulty")
        if difficulty not in (None, "simple", "hard"):
            raise ValueError(f"{where}: field 'difficulty' must be simple or hard, got {difficulty!r}")
        index = len(rows[split])
        rows[split].append(Triple(sample_id(split, index), split, row["prompt"].strip(),
                                  row["instruction"].strip(), row["elaboration"].strip(), "user", difficulty))
    if not any(rows.values()):
        raise ValueError(f"{path}: no samples (expected one JSON object per line)")
    return rows


class _WorldDraws:
    """World triples: deterministic per (seed, split, index, draw), every prompt used once
    in the whole set (so no test pair repeats a train pair)."""

    def __init__(self, seed: int):
        from seer.world.instructions import load_instructions

        instructions = load_instructions()
        self.pools = {"train": instructions.split("train"), "ood": instructions.split("ood")}
        self.seed = seed
        self.taken: set[str] = set()

    def draw(self, split: str, index: int, draw: int) -> Triple:
        from seer.world.descriptors import describe

        pool = self.pools["ood" if split == "test_ood" else "train"]
        rng = random.Random(f"{self.seed}/vie/{split}/{index}/{draw}")
        for _ in range(_MAX_PROMPT_TRIES):
            ins = rng.choice(pool)
            scene = ins.sample_prompt(rng)
            prompt = describe(scene)
            if prompt not in self.taken:
                break
        else:
            raise ValueError(f"no unused prompt for {sample_id(split, index)} in {_MAX_PROMPT_TRIES} tries")
        self.taken.add(prompt)
        return Triple(sample_id(split, index), split, prompt, ins.text, describe(ins.apply(scene)),
                      ins.split, ins.difficulty, draw, ins, scene)


# ---------------------------------------------------------------- images and ground truth

_SEED_BLOCK = 32


def _render(model, triples: list[Triple], cfg: VIEConfig, desc: str, salt: str) -> list[tuple]:
    """(positive, negative) image per triple. The two images of a sample share their noise
    seed, so they differ by their text only; the seed depends on the sample's place, not on
    the batch size. Positives and negatives go in one call: on CPU bigger batches cost less
    per image (docs/benchmarks.md)."""
    from tqdm.auto import tqdm

    pairs: list[tuple] = []
    # Seeds come in blocks of _SEED_BLOCK samples (block seed + place in the block): the
    # stream the sets were built with when a call rendered one block.
    seeds = [derive_seed(cfg.seed, "vie-images", salt, k // _SEED_BLOCK) + k % _SEED_BLOCK
             for k in range(len(triples))]
    starts = range(0, len(triples), cfg.render_batch_size)
    for start in tqdm(starts, desc=desc, unit="batch"):
        chunk = triples[start:start + cfg.render_batch_size]
        chunk_seeds = seeds[start:start + cfg.render_batch_size]
        texts = [t.elaboration for t in chunk] + [t.baseline for t in chunk]
        images = model.generate_images(texts, guidance_scale=cfg.guidance_scale, seed=chunk_seeds * 2)
        if len(images) != len(texts):
            raise ValueError(f"the model returned {len(images)} images for {len(texts)} texts")
        pairs += zip(images[:len(chunk)], images[len(chunk):], strict=True)
    return pairs


def _ground_truth(triple: Triple, seen_pos, seen_neg) -> dict[str, float]:
    """Satisfaction, margin and fidelity of the pair's scenes as the analyzer read them."""
    from seer.world.scores import prompt_fidelity

    ins = triple.rule
    p, n = ins.satisfaction(seen_pos), ins.satisfaction(seen_neg)
    return {"pos_satisfaction": p, "neg_satisfaction": n, "margin": p - n,
            "pos_fidelity": prompt_fidelity(triple.scene, seen_pos, ins),
            "neg_fidelity": prompt_fidelity(triple.scene, seen_neg, ins)}


_NO_TRUTH = dict.fromkeys(("pos_satisfaction", "neg_satisfaction", "margin", "pos_fidelity",
                           "neg_fidelity"))


def _world_split(model, cfg: VIEConfig, draws: _WorldDraws, split: str) -> list[tuple]:
    """(triple, pos, neg, truth) for n samples of a world split; samples whose positive is
    not strictly better are drawn again (when `require_margin`). With `contrast_items`, a
    train sample's truth also holds its contrast question (`_contrast`)."""
    from seer.world.analyzer import analyze_scene

    contrast = cfg.contrast_items and split == "train"
    n = cfg.counts()[split]
    kept: dict[int, tuple] = {}
    attempt = dict.fromkeys(range(n), 0)
    pending = list(range(n))
    round_ = 0
    while pending:
        triples = [draws.draw(split, i, attempt[i]) for i in pending]
        desc = f"vie: render {split}" + (f" (redraw {round_})" if round_ else "")
        pairs = _render(model, triples, cfg, desc, f"{split}/{round_}")
        retry = []
        for i, triple, (pos, neg) in zip(pending, triples, pairs, strict=True):
            seen_pos, seen_neg = analyze_scene(pos), analyze_scene(neg)
            truth = _ground_truth(triple, seen_pos, seen_neg)
            if cfg.require_margin and truth["margin"] <= 0:
                attempt[i] += 1
                if attempt[i] >= cfg.max_draws_per_sample:
                    raise ValueError(
                        f"the generator cannot render elaborations: {triple.id} got no positive image "
                        f"that satisfies its instruction better than the negative in "
                        f"{cfg.max_draws_per_sample} draws (set require_margin=false to keep such pairs)")
                retry.append(i)
                continue
            if contrast:
                truth |= _contrast(cfg, triple, seen_pos, seen_neg, draws.pools["train"])
            kept[i] = (triple, pos, neg, truth)
        pending, round_ = retry, round_ + 1
    return [kept[i] for i in range(n)]


# ---------------------------------------------------------------- rows

def _sample_row(triple: Triple, truth: dict[str, float | None]) -> dict[str, Any]:
    return {
        "id": triple.id, "split": triple.split, "prompt": triple.prompt,
        "instruction": triple.instruction, "instruction_split": triple.instruction_split,
        "instruction_difficulty": triple.instruction_difficulty, "elaboration": triple.elaboration,
        "baseline": triple.baseline, "pos_image": f"images/{triple.split}/{triple.id}_pos.png",
        "neg_image": f"images/{triple.split}/{triple.id}_neg.png", "draw": triple.draw, **truth,
    }


_CONTRAST_TRIES = 8


def _contrast(cfg: VIEConfig, triple: Triple, seen_pos, seen_neg, pool: list) -> dict[str, Any]:
    """Another training instruction that one image of the pair meets strictly better than
    the other (the first of up to 8 drawn), with both satisfactions; empty when none."""
    rng = random.Random(f"{cfg.seed}/vie/contrast/{triple.id}")
    others = [ins for ins in pool if ins.families != triple.rule.families]
    for ins in rng.sample(others, min(_CONTRAST_TRIES, len(others))):
        p, n = ins.satisfaction(seen_pos), ins.satisfaction(seen_neg)
        if p != n:
            return {"contrast_instruction": ins.text, "contrast_pos_satisfaction": p,
                    "contrast_neg_satisfaction": n}
    return {}


def _item(sample: dict[str, Any], kind: str, order: str, question: str, better: str, worse: str,
          **fields: Any) -> dict[str, Any]:
    """One evaluator item of a sample: `better` is the image the label calls positive;
    `fields` replace the sample's own margin and instruction fields."""
    return {
        "id": f"{sample['id']}-{kind}-{order}", "sample_id": sample["id"],
        "split": sample["split"], "kind": kind, "order": order, "question": question,
        "images": [better, worse] if order == "positive_first" else [worse, better], "label": LABELS[order],
        "pass_rate": None, "difficulty": None, "margin": sample["margin"],
        "instruction": sample["instruction"], "instruction_split": sample["instruction_split"],
        "instruction_difficulty": sample["instruction_difficulty"], "prompt": sample["prompt"],
        "elaboration": sample["elaboration"],
    } | fields


def items_of(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """The evaluator items of a sample row: both orders of its contrast question when it has
    one, then 2 question kinds x 2 image orders."""
    items = []
    if sample.get("contrast_instruction"):
        # "positive" is the image that meets the contrast instruction better (which may be
        # the sample's negative image).
        p, n = sample["contrast_pos_satisfaction"], sample["contrast_neg_satisfaction"]
        better, worse = sample["pos_image"], sample["neg_image"]
        if n > p:
            better, worse = worse, better
        question = T.pair_question("instruction", sample["contrast_instruction"])
        items += [_item(sample, "contrast", order, question, better, worse, margin=abs(p - n),
                        instruction=sample["contrast_instruction"], instruction_split="train",
                        instruction_difficulty=None)
                  for order in ORDERS]
    for kind in KINDS:
        text = sample["instruction"] if kind == "instruction" else sample["elaboration"]
        question = T.pair_question(kind, text)
        items += [_item(sample, kind, order, question, sample["pos_image"], sample["neg_image"])
                  for order in ORDERS]
    return items


def _score_difficulty(model, items: list[dict[str, Any]], pictures: dict[str, Image.Image],
                      cfg: VIEConfig) -> None:
    """Fill pass_rate / difficulty of `items` in place: the base evaluator's accuracy over
    `difficulty_samples` answers sampled at temperature 1."""
    import torch
    from tqdm.auto import tqdm

    k = cfg.difficulty_samples
    correct = [0] * len(items)
    starts = list(range(0, len(items), cfg.batch_size))
    bar = tqdm(total=len(starts) * k, desc="vie: difficulty (train)", unit="batch")
    for draw in range(k):
        for b, start in enumerate(starts):
            chunk = items[start:start + cfg.batch_size]
            generator = torch.Generator().manual_seed(derive_seed(cfg.seed, "vie-difficulty", draw, b))
            out = model.generate_text([it["question"] for it in chunk],
                                      images=[[pictures[p] for p in it["images"]] for it in chunk],
                                      max_new_tokens=cfg.max_new_tokens, temperature=1.0,
                                      generator=generator)
            for j, (item, text) in enumerate(zip(chunk, out.texts, strict=True)):
                correct[start + j] += yes_no(text) == item["label"]
            bar.update()
    bar.close()
    for item, hits in zip(items, correct, strict=True):
        item["pass_rate"] = hits / k
        item["difficulty"] = 1.0 - hits / k


# ---------------------------------------------------------------- build

def build_vie(cfg: VIEConfig, model=None) -> Path:
    """Build the VIE set of `cfg` into `cfg.out` (replaced whole, atomically); returns it.
    `model` overrides `cfg.model` with a model object (anything with `generate_images`,
    and `generate_text` when difficulty is scored)."""
    from seer import __version__
    from seer.io import atomic_dir

    cfg.check()
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())):
        raise ValueError(f"{out}: exists and is not a VIE set; refusing to replace it (choose another --out)")
    user = None if cfg.source == "world" else read_user_jsonl(cfg.source)  # fail fast on bad input
    model_path = cfg.model
    if model is None:
        from seer.models import load_model, packaged_mini_weights

        model = load_model(None, cfg.model, **cfg.model_options).eval()
        model_path = cfg.model if cfg.model is not None else str(packaged_mini_weights())

    built: dict[str, list[tuple]] = {}
    if user is None:
        draws = _WorldDraws(cfg.seed)
        for split in SPLITS:  # train first: later splits never reuse its prompts
            built[split] = _world_split(model, cfg, draws, split)
    else:
        for split in SPLITS:
            pairs = _render(model, user[split], cfg, f"vie: render {split}", f"{split}/0")
            built[split] = [(t, pos, neg, _NO_TRUTH)
                            for t, (pos, neg) in zip(user[split], pairs, strict=True)]

    samples = {split: [_sample_row(t, truth) for t, _, _, truth in rows] for split, rows in built.items()}
    items = {split: [it for s in rows for it in items_of(s)] for split, rows in samples.items()}
    if cfg.difficulty_samples and items["train"]:
        pictures = {}
        for row, (_, pos, neg, _) in zip(samples["train"], built["train"], strict=True):
            pictures[row["pos_image"]], pictures[row["neg_image"]] = pos, neg
        _score_difficulty(model, items["train"], pictures, cfg)

    manifest = {
        "format": FORMAT, "seer_version": __version__, "source": cfg.source, "model": model_path,
        "config_hash": config_hash(cfg), "ground_truth": user is None,
        "counts": {split: {"samples": len(samples[split]), "items": len(items[split])} for split in SPLITS},
    }
    if user is not None:
        manifest["source_sha256"] = hashlib.sha256(Path(cfg.source).read_bytes()).hexdigest()
    with atomic_dir(out) as tmp:
        for split in SPLITS:
            folder = tmp / "images" / split
            folder.mkdir(parents=True)
            for row, (_, pos, neg, _) in zip(samples[split], built[split], strict=True):
                pos.save(tmp / row["pos_image"], format="PNG")
                neg.save(tmp / row["neg_image"], format="PNG")
        _write_jsonl_folder(tmp / "samples", samples)
        _write_jsonl_folder(tmp / "items", items)
        _write_json(tmp / "config.json", saved_config(cfg))
        _write_json(tmp / MANIFEST, manifest)
    return out


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _write_jsonl_folder(folder: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    folder.mkdir()
    for split, split_rows in rows.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in split_rows))


# ---------------------------------------------------------------- loading

def load_manifest(out: str | Path) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{out}: not a VIE set (missing {MANIFEST}); build one with `seer data vie`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read ({err.__class__.__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a VIE manifest (expected format '{FORMAT}')")
    return manifest


def _load(out: str | Path, what: str, split: str) -> list[dict[str, Any]]:
    load_manifest(out)
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}' (expected one of: {', '.join(SPLITS)})")
    path = Path(out) / what / f"{split}.jsonl"
    if not path.is_file():
        raise ValueError(f"{out}: not a complete VIE set (missing {what}/{split}.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_samples(out: str | Path, split: str) -> list[dict[str, Any]]:
    """The (prompt, instruction, elaboration) rows of one split, with image paths and scores."""
    return _load(out, "samples", split)


def load_items(out: str | Path, split: str) -> list[dict[str, Any]]:
    """The evaluator items of one split (four per sample)."""
    return _load(out, "items", split)


def open_images(out: str | Path, row: dict[str, Any]) -> list[Image.Image]:
    """The images of an item row (in its order) or of a sample row ([positive, negative])."""
    if "images" in row:
        paths = row["images"]
    elif "pos_image" in row:
        paths = [row["pos_image"], row["neg_image"]]
    else:
        raise ValueError("expected an item row (with 'images') or a sample row (with 'pos_image')")
    images = []
    for rel in paths:
        path = Path(out) / rel
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except OSError as err:
            raise ValueError(f"{path}: cannot read image ({err.__class__.__name__})") from None
    return images


def as_dataset(out: str | Path, split: str, what: str = "items"):
    """One split as a `datasets.Dataset`; image columns are `datasets.Image` features
    decoded from the set's PNGs."""
    import datasets

    if what not in ("items", "samples"):
        raise ValueError(f"what must be 'items' or 'samples', got {what!r}")
    rows = _load(out, what, split)
    root = Path(out).resolve()
    text, number = datasets.Value("string"), datasets.Value("float64")
    if what == "items":
        features = datasets.Features({
            "id": text, "sample_id": text, "split": text, "kind": text, "order": text, "question": text,
            "images": datasets.List(datasets.Image()), "label": text, "pass_rate": number,
            "difficulty": number, "margin": number, "instruction": text, "instruction_split": text,
            "instruction_difficulty": text, "prompt": text, "elaboration": text,
        })
        for row in rows:
            row["images"] = [str(root / p) for p in row["images"]]
    else:
        features = datasets.Features({
            "id": text, "split": text, "prompt": text, "instruction": text, "instruction_split": text,
            "instruction_difficulty": text, "elaboration": text, "baseline": text,
            "pos_image": datasets.Image(), "neg_image": datasets.Image(), "draw": datasets.Value("int64"),
            **dict.fromkeys(_NO_TRUTH, number), "contrast_instruction": text,
            "contrast_pos_satisfaction": number, "contrast_neg_satisfaction": number,
        })
        for row in rows:
            row["pos_image"], row["neg_image"] = str(root / row["pos_image"]), str(root / row["neg_image"])
    return datasets.Dataset.from_list([{k: row.get(k) for k in features} for row in rows], features=features)
