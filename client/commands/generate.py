"""`rnnctl generate`: stream text from a language model, printing tokens as they arrive."""

from __future__ import annotations

import click

from ..context import json_option, pass_app
from ..types import GenerationFinish
from .predict import parse_numbers


@click.command("generate")
@click.argument("model")
@click.argument("prompt", default="")
@click.option("-n", "--max-new-tokens", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("-t", "--temperature", type=click.FloatRange(min=0), help="0 is greedy (default: 1).")
@click.option("--top-k", type=click.IntRange(min=0), help="Sample among the k most likely tokens (0: all).")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), help="Nucleus sampling threshold.")
@click.option("--repetition-penalty", type=click.FloatRange(min=0, min_open=True))
@click.option("--stop", multiple=True, help="Stop when the text ends with this (repeatable).")
@click.option("--seed", type=click.IntRange(min=0), help="Same seed, same text.")
@click.option("--label", help="One-to-many models: the label that conditions the output.")
@click.option("--beam-size", type=click.IntRange(min=1), help="Seq2seq models: beam search width.")
@click.option("--no-prompt", is_flag=True, help="Print only the generated text, not the prompt.")
@click.option("--values", "prompt_is_values", is_flag=True,
              help="PROMPT is a series of numbers to continue (forecasting models), e.g. 1.5,2,2.5.")
@json_option
@pass_app
def command(app, model: str, prompt: str, no_prompt: bool, prompt_is_values: bool, stop: tuple[str, ...],
            **sampling) -> None:
    """Stream text from MODEL, continuing PROMPT, printing tokens as they arrive.

    With --values, PROMPT is a series of numbers and a forecasting model continues it, one value per line.
    """
    console = app.console
    series = parse_numbers(prompt, "PROMPT") if prompt_is_values else None
    echo = not console.json_mode and not no_prompt and prompt and series is None
    # a language model continues its prompt; seq2seq and one-to-many prompts are not part of the output
    echo = echo and app.client.get_model(model).task == "language_model"
    stream = app.client.generate(model, prompt if series is None else series, stop=stop, **sampling)
    if echo:
        console.stream(prompt)
    tokens, finish = [], None
    try:
        for item in stream:
            if isinstance(item, GenerationFinish):
                finish = item
            else:
                tokens.append(item)
                console.stream(item.text if item.value is None else f"{item.value:.6g}\n")
    finally:
        stream.close()
    if console.json_mode:
        console.json({
            "model": model, "prompt": prompt,
            "text": finish.text if finish else "".join(t.text for t in tokens),
            "finish_reason": finish.reason if finish else None,
            "prompt_tokens": finish.prompt_tokens if finish else None,
            "tokens": [{"text": t.text, "id": t.id, "logprob": t.logprob, "value": t.value} for t in tokens],
        })
        return
    if not (tokens and tokens[-1].value is not None):  # values already end their lines
        console.stream("\n")
    if finish is None:
        console.abort("the generation stream ended without a summary")
    console.debug(f"[{finish.reason}: {finish.generated_tokens} tokens after a {finish.prompt_tokens}-token "
                  "prompt]")
