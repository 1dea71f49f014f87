"""The tokenizer and the generated tasks: round trips, clear errors, determinism, correct answers."""

import pytest
import torch

from minitransformer import TASKS, make_examples, tokenizer
from minitransformer.data import IGNORE, FixedSampler, TaskSampler, encode_classification, encode_lm
from minitransformer.tokenizer import LETTERS, VOCAB, CharTokenizer


def test_encode_decode_round_trip():
    text = VOCAB[::-1] + "Rabc=cba."
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode(torch.tensor(tokenizer.encode(text))) == text


def test_unknown_character_error_names_it_and_the_vocabulary():
    with pytest.raises(ValueError, match=r"character 'z' at position 3 of 'Rabz=' is not in the vocabulary; valid"):
        tokenizer.encode("Rabz=")


def test_bad_ids_and_types_are_errors():
    with pytest.raises(ValueError, match="token id 99 at position 1"):
        tokenizer.decode([0, 99])
    with pytest.raises(TypeError, match="encode expects a str, got list"):
        tokenizer.encode(["a"])
    with pytest.raises(ValueError, match=r"duplicated characters: \['a'\]"):
        CharTokenizer("aab")


def test_every_task_character_is_in_the_vocabulary():
    for name in TASKS:
        for example in make_examples(name, 50, seed=0):
            tokenizer.encode(example.text)


def test_same_seed_same_data_other_seed_other_data():
    assert make_examples(("copy", "sort"), 100, seed=5) == make_examples(("copy", "sort"), 100, seed=5)
    assert make_examples(("copy", "sort"), 100, seed=5) != make_examples(("copy", "sort"), 100, seed=6)
    a, b = TaskSampler("reverse", 8, seed=3), TaskSampler("reverse", 8, seed=3)
    for _ in range(3):
        assert torch.equal(a()["x"], b()["x"])


def test_generative_answers_are_correct():
    shift = {c: LETTERS[(i + 1) % 16] for i, c in enumerate(LETTERS)}
    rules = {
        "copy": lambda s: s, "reverse": lambda s: s[::-1], "sort": lambda s: "".join(sorted(s)),
        "shift": lambda s: "".join(shift[c] for c in s),
    }
    for task, rule in rules.items():
        for e in make_examples(task, 200, seed=1):
            marker, body = e.prompt[0], e.prompt[1:-1]
            assert marker == TASKS[task].marker and e.prompt.endswith("=") and 3 <= len(body) <= 8
            assert e.answer == rule(body) + "."


def test_classification_labels_are_correct_and_balanced():
    for task, rule in {"is_sorted": lambda s: list(s) == sorted(s), "is_palindrome": lambda s: s == s[::-1]}.items():
        examples = make_examples(task, 1000, seed=2)
        assert all(e.label == int(rule(e.prompt[1:-1])) for e in examples)
        assert 0.45 < sum(e.label for e in examples) / len(examples) < 0.55


def test_lm_targets_cover_exactly_the_answer():
    examples = make_examples(("copy", "reverse"), 20, seed=0)
    x, y = encode_lm(examples)
    for row, e in enumerate(examples):
        targets = [t for t in y[row].tolist() if t != IGNORE]
        assert tokenizer.decode(targets) == e.answer
        assert tokenizer.decode(x[row, : len(e.text) - 1]) == e.text[:-1]


def test_classification_batch_reads_at_the_separator():
    examples = make_examples("is_sorted", 10, seed=0)
    x, positions, labels = encode_classification(examples)
    assert all(tokenizer.itos[int(x[i, p])] == "=" for i, p in enumerate(positions))
    assert labels.tolist() == [e.label for e in examples]


def test_bad_task_requests_are_errors():
    with pytest.raises(ValueError, match=r"unknown task 'revers'; valid tasks are \["):
        make_examples("revers", 3, seed=0)
    with pytest.raises(ValueError, match="cannot mix generative and classification"):
        make_examples(("copy", "is_sorted"), 3, seed=0)
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        make_examples("copy", 0, seed=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got -1"):
        TaskSampler("copy", -1)


def test_fixed_sampler_cycles_through_every_example():
    examples = make_examples("is_sorted", 10, seed=0)
    sampler = FixedSampler(examples, batch_size=5, seed=0)
    seen = [tokenizer.decode(row).rstrip("_") for _ in range(2) for row in sampler()["x"]]
    assert sorted(seen) == sorted(e.prompt for e in examples)
