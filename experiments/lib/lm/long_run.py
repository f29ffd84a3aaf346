"""The long run: ``configs/lm_lstm.py`` trained as it is, its test bpc, curve and samples.

``python -m experiments.lm --long-run`` trains the config through the pipeline (or reuses the
finished run in ``<workdirs>/long_run``), then writes ``<out>/long_run/``: ``report.md`` (the
summary and the samples), ``curve.png`` (training and validation bits per character against
characters trained) and ``results.json``. ``--quick`` shrinks it to seconds (its numbers mean
nothing).
"""

from pathlib import Path

from configs import lm_lstm
from experiments.lib import reporting, training_runs
from experiments.lib.reporting import Column

PROMPTS = ("This movie", "I have never", "The acting was")
TEMPERATURE = 0.8
LENGTH = 400
QUICK_FIELDS = {
    "max_examples": 60,
    "hidden_size": 8,
    "embed_dim": 8,
    "batch_size": 4,
    "chunk_length": 16,
    "eval_batch_size": 8,
    "steps_per_epoch": 10,
    "num_epochs": 2,
}
COLUMNS = (
    Column("test_bpc", "test bpc", "{:.4f}"),
    Column("best_val_bpc", "best validation bpc", "{:.4f}"),
    Column("best_epoch", "best epoch"),
    Column("characters_trained", "characters trained", "{:,}"),
    Column("num_params", "parameters", "{:,}"),
    Column("characters_per_second", "characters/s", "{:,.0f}"),
    Column("train_seconds", "train s", "{:,.0f}"),
    Column("test_characters", "test characters", "{:,}"),
)


def curve_figure(history: list[dict], per_step: int):
    """Training and validation bits per character after each epoch."""
    fig, (ax,) = reporting.new_figure(width=6.5, height=4.0)
    characters = [h["step"] * per_step for h in history]
    ax.plot(characters, [h["train_bpc"] for h in history], marker="o", label="training")
    ax.plot(characters, [h["val_bpc"] for h in history], marker="o", label="validation")
    ax.set_xlabel("characters trained")
    ax.set_ylabel("bits per character")
    ax.set_title("configs/lm_lstm.py")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def main(args) -> None:
    """Trains (or reuses) the long run and writes its report (see the module docstring)."""
    from rnn_jax.inference import generation

    config = lm_lstm.get_config()
    config.update(data_dir=args.data_dir, cache_dir=args.cache_dir, progress_bar=False)
    if args.quick:
        config.update(QUICK_FIELDS)
    workdir = Path(args.workdirs) / "long_run"
    args.out = Path(args.out) / "long_run"
    # Before training, so that the report's run time counts it (this command's part of it).
    report = reporting.Report(args, "Language model: configs/lm_lstm.py trained as it is")
    result = training_runs.run("lm_lstm", config, workdir)
    run = generation.load_language_model(str(workdir))
    # One seed per prompt: under the same random draws, continuations that have forgotten
    # their prompts fall onto the same text.
    samples = [
        prompt + generation.sample(run, prompt, length=LENGTH, temperature=TEMPERATURE, seed=seed)
        for seed, prompt in enumerate(PROMPTS)
    ]
    per_step = config.batch_size * config.chunk_length
    report.text(
        f"{config.num_layers} x {config.cell} of {config.hidden_size} over a byte embedding of "
        f"{config.embed_dim}, {config.batch_size} streams x {config.chunk_length} characters per "
        f"step, {config.num_epochs} epochs of {config.steps_per_epoch} steps, Adam "
        f"{config.learning_rate:g} with cosine decay; test bits per character on every "
        "test review, from the checkpoint best on validation."
    )
    report.table("summary", [result.summary], COLUMNS, "The run")
    report.figure("curve", curve_figure(result.history, per_step), "Bits per character")
    report.text(
        f"## Samples (temperature {TEMPERATURE:g}, seeds 0-{len(PROMPTS) - 1}, one per prompt, "
        f"at most {LENGTH} bytes)\n\n"
        + "\n\n".join(f"```text\n{s.replace('```', chr(39) * 3)}\n```" for s in samples)
    )
    report.json(
        "results", {"summary": result.summary, "history": result.history, "samples": samples}
    )
    report.finish()
