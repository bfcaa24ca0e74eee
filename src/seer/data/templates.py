"""The words of every task, in one place: what the user turn says and how answers look.

The pretraining mix, the RL stages and evaluation all build prompts from these, so the
format a model learns is the format it is later asked in. The reasoning/answer tags are
the authors' (`<think> </think>`, `<answer> </answer>`); stages may override them.
"""

from __future__ import annotations

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# The reprompting task: the model reads a prompt and an instruction and answers with a
# reasoning and a reprompt. Pretraining only ever shows it with no instruction.
REPROMPT = "rewrite for drawing : {prompt} ; instruction : {instruction}"
NO_INSTRUCTION = "none"
RESTATE_REASONING = "the prompt is already literal"


def reprompt_question(prompt: str, instruction: str | None) -> str:
    return REPROMPT.format(prompt=prompt, instruction=instruction or NO_INSTRUCTION)


def tagged(reasoning: str, answer: str) -> str:
    return f"{THINK_OPEN} {reasoning} {THINK_CLOSE} {ANSWER_OPEN} {answer} {ANSWER_CLOSE}"


# Single-image questions of the pretraining mix (understanding).
ATTRIBUTE_QUESTIONS = {
    "background": "what color is the background ?",
    "count": "how many objects are there ?",
    "sky": "what is in the sky ?",
    "weather": "what is the weather ?",
    "decoration": "what decorates the picture ?",
    "style": "what style is the picture drawn in ?",
    "shape_at": "what shape is {where} ?",
    "color_at": "what color is the object {where} ?",
    "size_at": "how big is the object {where} ?",
    "has": "is there a {color} {shape} ?",
    "describe": "describe the picture .",
}
CONCEPT_QUESTIONS = ("does it look {adjective} ?", "does the picture fit : {instruction} ?")
# Language knowledge: what an instruction means, asked in words.
KNOWLEDGE_QUESTIONS = ("what does a {adjective} picture look like ?",
                       "what does it mean to {instruction} ?")
# Two-image prompts: pretraining asks single-image questions about "the first image" or
# "the second image" (never a comparison), so the model can address either image; the
# evaluator stage then asks the paper's comparisons.
IMAGE_NAMES = ("first", "second")
IN_IMAGE = "in the {which} image , {question}"
# Asking for reasoning first: the answer comes as tagged(reasoning, answer).
THINK_FIRST = "think , then answer ."
FITS, DOES_NOT_FIT = "the {which}image fits", "the {which}image does not fit"
# The evaluator's comparisons (SEER.md, Stage 1), about the instruction or the description.
PAIR_QUESTIONS = {
    "instruction": "instruction : {text} . does the first image match the instruction better than "
                   "the second image ?",
    "description": "description : {text} . does the first image match the description better than "
                   "the second image ?",
}
NUMBER_WORDS = ("none", "one", "two", "three")
YES, NO = "yes", "no"
NOTHING = "nothing"


def baseline_text(prompt: str, instruction: str) -> str:
    """The paper's "Concat" baseline: prompt and instruction joined, no reprompting."""
    return f"{prompt}, {instruction}"


def in_image(which: str, question: str) -> str:
    return IN_IMAGE.format(which=which, question=question)


def fit_reasoning(fits: bool, which: str | None = None) -> str:
    """'the image fits' / 'the second image does not fit': the concept answer's reasoning."""
    return (FITS if fits else DOES_NOT_FIT).format(which=f"{which} " if which else "")


def pair_question(kind: str, text: str, think: bool = True) -> str:
    """The evaluator's question about two images; `kind` is 'instruction' or 'description'."""
    if kind not in PAIR_QUESTIONS:
        raise ValueError(f"unknown question kind '{kind}' (expected one of: {', '.join(PAIR_QUESTIONS)})")
    question = PAIR_QUESTIONS[kind].format(text=text)
    return f"{question} {THINK_FIRST}" if think else question
