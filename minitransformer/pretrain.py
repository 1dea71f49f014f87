"""Train the course's base model from scratch: `python -m minitransformer.pretrain`.

The shipped checkpoint (minitransformer/checkpoints/base.*) was written by this command with its
defaults; run it again on the same machine and thread count to get the same file, bit for bit.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import asdict, dataclass

import torch

from .checkpoint import BASE_CHECKPOINT, require_writable, save_checkpoint, sha256_of
from .data import BASE_TASKS, TaskSampler
from .model import MiniTransformer, ModelConfig
from .runtime import SEED, THREADS, setup
from .evaluate import evaluate_base_tasks
from .train import train
from .guards import require_int, require_number


@dataclass
class Recipe:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: int = 100
    seed: int = SEED
    threads: int = THREADS


def require_recipe(recipe: Recipe) -> None:
    """Refuse a recipe that would train nothing or fail mid-way (names are the command's options)."""
    require_int("recipe.steps (--steps)", recipe.steps, 1)
    require_int("recipe.batch_size (--batch-size)", recipe.batch_size, 1)
    require_number("recipe.lr (--lr)", recipe.lr, 0, low_open=True)
    require_number("recipe.weight_decay (--weight-decay)", recipe.weight_decay, 0)
    require_int("recipe.warmup (--warmup)", recipe.warmup, 0)
    require_int("recipe.seed (--seed)", recipe.seed, 0)
    require_int("recipe.threads (--threads)", recipe.threads, 1)


def pretrain(recipe: Recipe, config: ModelConfig | None = None, progress: bool = True):
    """Train a base model on the base tasks; return (model, metadata)."""
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a pretrain.Recipe, got a {type(recipe).__name__}")
    require_recipe(recipe)
    setup(recipe.seed, recipe.threads)
    model = MiniTransformer(config or ModelConfig())
    sampler = TaskSampler(BASE_TASKS, batch_size=recipe.batch_size, seed=recipe.seed)
    history = train(
        model, sampler, steps=recipe.steps, lr=recipe.lr, weight_decay=recipe.weight_decay,
        warmup=recipe.warmup, progress=progress, desc="pretraining",
    )
    metrics = evaluate_base_tasks(model)
    every = max(1, recipe.steps // 200)  # keep ~200 points of the loss curve in the metadata
    metadata = {
        "recipe": asdict(recipe),
        "tasks": list(BASE_TASKS),
        "exact_match": {k: round(v, 4) for k, v in metrics.items()},
        "train_seconds": round(history.seconds, 1),
        "loss_curve": {
            "steps": history.steps[::every],
            "loss": [round(x, 4) for x in history.losses[::every]],
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
    }
    return model, metadata


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minitransformer.pretrain", description=__doc__.splitlines()[0])
    defaults = Recipe()
    parser.add_argument("--out", default=str(BASE_CHECKPOINT), help="checkpoint path without extension")
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--n-layer", type=int, default=ModelConfig.n_layer)
    parser.add_argument("--d-model", type=int, default=ModelConfig.d_model)
    parser.add_argument("--n-head", type=int, default=ModelConfig.n_head)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    recipe = Recipe(**{name: getattr(args, name) for name in asdict(defaults)})
    try:  # everything is checked before training starts
        config = ModelConfig(n_layer=args.n_layer, d_model=args.d_model, n_head=args.n_head)
        require_recipe(recipe)
        require_writable(args.out)
    except (ValueError, PermissionError) as error:
        parser.error(str(error).replace("ModelConfig.n_layer", "--n-layer").replace("ModelConfig.d_model", "--d-model")
                     .replace("ModelConfig.n_head", "--n-head").replace("valid n_head", "valid --n-head"))
    start = time.perf_counter()
    model, metadata = pretrain(recipe, config, progress=not args.no_progress)
    path = save_checkpoint(model, args.out, metadata)
    print(f"trained in {time.perf_counter() - start:.1f} s; exact match {metadata['exact_match']}")
    print(f"wrote {path} ({path.stat().st_size:,} bytes, sha256 {sha256_of(path)})")


if __name__ == "__main__":
    main()
