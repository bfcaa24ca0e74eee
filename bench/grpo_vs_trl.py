"""GRPO step throughput: seer's engine (`seer.train.grpo`) vs TRL's `GRPOTrainer`.

    pip install -e ".[bench]"          # TRL, an optional extra
    python bench/grpo_vs_trl.py [--steps 10] [--warmup 2] [--threads 2] [--beta 0.0] [--generations 8]

Both get the same tiny text policy (one `MiniUMM`'s Llama; TRL gets a deep copy of it and
the same tokenizer), the same prompts in the same order, the same first-letter reward and
the same GRPO settings (G, completions per step, max_completion_length, temperature 1,
beta, epsilon, loss_type, scale_rewards, learning rate and schedule, AdamW, gradient
clipping, fp32 on CPU, no vLLM, one iteration, no gradient accumulation). A step is one
generation round: sample, score, one optimizer update. Warm-up steps are not timed; then
each framework runs `--steps` steps with the same thread count, in the same process, and
the table gives completions (samples) per second side by side. Throughput does not depend
on what the weights know, so a freshly initialised policy stands in for a trained one.

Prompts are plain text written with the mini model's own turn tokens
("<bos> <user> question <assistant>"), so TRL tokenizes them to exactly the ids seer's
`user_turn` builds (checked before timing). Exits with code 2 when TRL is not installed.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

INSTALL_HINT = (
    "TRL is not installed. It is an optional extra of this project:\n"
    '    pip install -e ".[bench]"        (or: pip install "trl>=1.16")'
)


def first_letter_reward(texts: list[str], letters: str = "abcdefgh") -> list[float]:
    """1 for a completion whose first character is one of `letters`, else 0 (the toy task
    of tests/train/test_grpo.py: a tiny random policy hits it now and then)."""
    return [float(t[:1] != "" and t[:1] in letters) for t in texts]


CONTEXT_WORDS = 0  # set from --context: words before each question (stand-ins for image codes)


def prompt_texts(step: int, n: int) -> list[str]:
    """The step's n user questions; every one has the same length, so no prompt is padded.
    With --context N, N words come first: an evaluator's prompt carries two images, ~530
    tokens, before its question."""
    context = "the " * CONTEXT_WORDS
    return [f"{context}is there a red circle ? {'yes' if (step + i) % 2 else 'no'}" for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per framework (per round)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones")
    ap.add_argument("--threads", type=int, default=2, help="torch threads, the same for both")
    ap.add_argument("--beta", type=float, default=0.0, help="KL coefficient (0: no reference model)")
    ap.add_argument("--generations", type=int, default=8, help="G, completions per prompt")
    ap.add_argument("--prompts", type=int, default=4, help="prompts per step")
    ap.add_argument("--max-completion-length", type=int, default=16)
    ap.add_argument("--context", type=int, default=0,
                    help="words of context before each question (RLVR's two images: ~530 tokens)")
    ap.add_argument("--loss-type", default="dapo", choices=("grpo", "bnpo", "dr_grpo", "dapo"))
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=32, help="policy width (the tests' TINY: 32)")
    ap.add_argument("--layers", type=int, default=2, help="policy depth (the tests' TINY: 2)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the comparison, alternating which framework runs first")
    args = ap.parse_args()
    global CONTEXT_WORDS
    CONTEXT_WORDS = args.context
    if importlib.util.find_spec("trl") is None:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(2)
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        ap.error("--steps and --rounds must be >= 1 and --warmup >= 0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local; never reach for a hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    run(args)


def run(args: argparse.Namespace) -> None:
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import GRPOConfig as TRLConfig
    from trl import GRPOTrainer

    from common import machine, table
    from seer.data.mix import vocabulary_corpus
    from seer.models.mini.model import MiniConfig, MiniUMM
    from seer.rollout import Prompt, Rollout
    from seer.train.grpo import GRPOConfig, GRPOEngine

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    completions = args.prompts * args.generations
    total = args.warmup + args.steps
    common_settings = dict(
        num_generations=args.generations,
        per_device_train_batch_size=completions,  # completions per micro-batch: the whole step
        gradient_accumulation_steps=1,
        max_completion_length=args.max_completion_length,
        temperature=1.0,
        beta=args.beta,
        epsilon=0.2,
        loss_type=args.loss_type,
        scale_rewards="group",
        importance_sampling_level="token",
        num_iterations=1,
        mask_truncated_completions=False,
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_steps=total,
        logging_steps=1,
    )

    # Text only: the image tokenizer is the tests' smallest (32 codes), never used here.
    config = MiniConfig(hidden_size=args.hidden, num_layers=args.layers, num_heads=max(2, args.hidden // 64),
                        codebook_size=32, vq_channels=(32,), vq_unshuffle=8)
    base = MiniUMM.create(vocabulary_corpus(), config, seed=0)
    n_params = sum(p.numel() for p in base.lm.parameters())

    # ------------------------------------------------------------ the same prompts and reward

    def trl_prompt(text: str) -> str:
        return f"{base.tokenizer.bos_token} <user> {text} <assistant>"

    for text in prompt_texts(0, 2):  # TRL tokenizes plain text; it must give seer's user turn
        got = base.tokenizer(text=[trl_prompt(text)])["input_ids"][0]
        if got != base.user_turn(text):
            raise SystemExit(f"prompt ids differ: TRL {got} vs seer {base.user_turn(text)}")

    class FirstLetterStage:
        name, prefix, progress_keys = "first-letter", "", ()

        def batch(self, step: int, n: int) -> list[Prompt]:
            return [Prompt(t) for t in prompt_texts(step, n)]

        def rewards(self, rollout: Rollout, step: int) -> dict[str, torch.Tensor]:
            return {"first_letter": torch.tensor(first_letter_reward(rollout.completions))}

    def first_letter(prompts, completions, completion_ids, trainer_state, **kw) -> list[float]:
        step = trainer_state.global_step  # TRL must see the prompts seer's stage gives at this step
        expected = [trl_prompt(t) for t in prompt_texts(step, args.prompts) for _ in range(args.generations)]
        if prompts != expected:
            raise RuntimeError(f"TRL's prompts at step {step} are not seer's")
        # Decoded as seer decodes (special tokens kept), so both score the same text.
        return first_letter_reward([base.decode_text(torch.as_tensor(ids)) for ids in completion_ids])

    # ------------------------------------------------------------ one timed run each

    def time_seer(tmp: Path) -> dict[str, float]:
        torch.set_num_threads(args.threads)
        model = copy.deepcopy(base)
        cfg = GRPOConfig(**common_settings, save_steps=10**9)
        engine = GRPOEngine(model, FirstLetterStage(), cfg, tmp / "seer", seed=0)
        ends, records = [], []
        start = time.perf_counter()
        for step in range(total):
            records.append(engine.step(step))
            ends.append(time.perf_counter())
        return summarize(start, ends, [r["seconds_sampling"] for r in records],
                         [(r["completion_length"], r["reward"]) for r in records])

    class StepClock(TrainerCallback):
        def __init__(self):
            self.start, self.ends = 0.0, []

        def on_train_begin(self, *a, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **kw):
            self.ends.append(time.perf_counter())

    def time_trl(tmp: Path) -> dict[str, float]:
        torch.set_num_threads(args.threads)
        lm = copy.deepcopy(base.lm)
        # TRL builds its reference model (beta != 0) by loading the policy's `_name_or_path`:
        # point it at a local copy of the same weights.
        lm.save_pretrained(tmp / "policy")
        lm.config._name_or_path = str(tmp / "policy")
        tokenizer = copy.deepcopy(base.tokenizer)
        prompts = [trl_prompt(t) for s in range(total) for t in prompt_texts(s, args.prompts)]
        trl_args = TRLConfig(
            output_dir=str(tmp / "trl"),
            **common_settings,
            use_cpu=True,
            bf16=False,
            fp16=False,
            report_to=[],
            save_strategy="no",
            gradient_checkpointing=False,  # TRL's default is True; seer's engine never checkpoints
            shuffle_dataset=False,  # step s sees the prompts seer's stage gives at step s
            top_p=1.0,
            top_k=0,
            use_vllm=False,
            log_completions=False,
            disable_tqdm=True,
            dataloader_num_workers=0,
            seed=0,
        )
        clock = StepClock()
        trainer = GRPOTrainer(
            model=lm,
            reward_funcs=first_letter,
            args=trl_args,
            train_dataset=Dataset.from_dict({"prompt": prompts}),
            processing_class=tokenizer,
            callbacks=[clock],
        )
        for cb in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(cb)
        sampling = []
        generate = trainer._generate_single_turn  # timed only, as seer times its sampling

        def timed_generate(*a, **kw):
            t0 = time.perf_counter()
            out = generate(*a, **kw)
            sampling.append(time.perf_counter() - t0)
            return out

        trainer._generate_single_turn = timed_generate
        torch.set_num_threads(args.threads)
        trainer.train()
        logs = [e for e in trainer.state.log_history if "completions/mean_length" in e]
        return summarize(clock.start, clock.ends, sampling,
                         [(e["completions/mean_length"], e["reward"]) for e in logs])

    def summarize(start: float, ends: list[float], sampling: list[float],
                  stats: list[tuple[float, float]]) -> dict[str, float]:
        if not len(ends) == len(sampling) == len(stats) == total:
            raise RuntimeError(f"expected {total} steps, got {len(ends)}, {len(sampling)}, {len(stats)}")
        t0 = ends[args.warmup - 1] if args.warmup else start
        timed = stats[args.warmup:]
        return {
            "seconds": ends[-1] - t0,
            "sampling": sum(sampling[args.warmup:]),
            "steps": args.steps,
            "length": sum(s[0] for s in timed) / len(timed),
            "reward": sum(s[1] for s in timed) / len(timed),
        }

    results: dict[str, list[dict[str, float]]] = {"seer": [], "trl": []}
    runners = {"seer": time_seer, "trl": time_trl}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            for name in (("seer", "trl") if k % 2 == 0 else ("trl", "seer")):
                print(f"round {k + 1}/{args.rounds}: {name} ({total} steps)...", file=sys.stderr, flush=True)
                results[name].append(runners[name](Path(tmp) / f"{name}{k}"))

    # ------------------------------------------------------------ the table

    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; transformers {transformers.__version__}, trl {trl.__version__}")
    print(f"settings: policy Llama hidden {args.hidden}, {args.layers} layers, vocab {len(base.tokenizer)} "
          f"({n_params / 1e3:.0f}k params), fp32, CPU, no vLLM; G={args.generations}, {args.prompts} prompts "
          f"-> {completions} completions a step, {args.context} context words a prompt, "
          f"max_completion_length {args.max_completion_length}, "
          f"temperature 1, beta {args.beta}, epsilon 0.2, loss_type {args.loss_type}, scale_rewards group, "
          f"lr {args.learning_rate:g} constant, AdamW, max_grad_norm 1, num_iterations 1, gradient "
          f"accumulation 1; first-letter reward; {args.warmup} warm-up + {args.steps} timed steps each, "
          f"{args.rounds} round(s)\n")
    rate = {}
    rows = []
    for name, label in (("seer", "seer GRPOEngine"), ("trl", f"TRL GRPOTrainer {trl.__version__}")):
        runs = results[name]
        seconds = sum(r["seconds"] for r in runs)
        steps = sum(r["steps"] for r in runs)
        sampling = sum(r["sampling"] for r in runs)
        rate[name] = steps * completions / seconds
        rows.append([label, steps, f"{seconds / steps:.3f}", f"{sampling / steps:.3f}",
                     f"{(seconds - sampling) / steps:.3f}", f"{rate[name]:.1f}",
                     f"{sum(r['length'] for r in runs) / len(runs):.1f}",
                     f"{sum(r['reward'] for r in runs) / len(runs):.3f}"])
    rows[0].append(f"{rate['seer'] / rate['trl']:.2f}x")
    rows[1].append("1.00x")
    print(table(["framework", "timed steps", "s/step", "sampling s/step", "rest s/step", "samples/s",
                 "mean completion tokens",
                 "mean reward", "vs TRL"], rows))


if __name__ == "__main__":
    main()
