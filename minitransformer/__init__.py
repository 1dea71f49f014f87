"""minitransformer: a tiny GPT written by hand, and parameter-efficient fine-tuning built on it."""

from .checkpoint import load_base, load_checkpoint, save_checkpoint
from .data import BASE_TASKS, TASKS, TaskSampler, make_examples
from .model import Block, CausalSelfAttention, Classifier, MiniTransformer, MLP, ModelConfig, causal_attention
from .runtime import SEED, THREADS, setup
from .tokenizer import CharTokenizer, tokenizer
from .evaluate import base_task_scores, evaluate_base_tasks, exact_match, generate, token_accuracy
from .train import train

__version__ = "0.1.0"
