"""Shared fixtures: a tiny randomly initialised Llama built from a config and a byte-level BPE tokenizer.

Nothing is downloaded and nothing is read from the cache: the tokenizer is trained on the lines below in a
few milliseconds, and every model is built from a `LlamaConfig`.
"""

import contextlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from elasticity.data import Example

ROOT = Path(__file__).resolve().parents[1]

LINES = [
    "the film is a delight from start to finish, warm and funny.",
    "a dull, plodding mess that never finds its footing.",
    "language models resist alignment: evidence from data compression.",
    "the quick brown fox jumps over the lazy dog.",
    "pack my box with five dozen liquor jugs.",
    "an honest, moving portrait of a family under strain.",
    "Question: what is the capital of France?\nAnswer: Paris.",
]

# Prompt/response pairs for fine-tuning tests (an empty prompt: the loss covers the whole text).
EXAMPLES = [
    Example("the film is", " a delight from start to finish."),
    Example("a dull,", " plodding mess that never finds its footing."),
    Example("", "the quick brown fox jumps over the lazy dog."),
    Example("an honest,", " moving portrait of a family."),
    Example("pack my box", " with five dozen liquor jugs."),
    Example("Question: what is the capital of France?\nAnswer:", " Paris."),
]


def load_script(relative_path: str, name: str):
    """Import a script of the repository (benchmarks/, scripts/) as module `name`, with its folder importable as
    `python <folder>/<script>.py` makes it (benchmarks share `benchmarks/record.py`)."""
    folder = str((ROOT / relative_path).parent)
    if folder not in sys.path:
        sys.path.append(folder)
    spec = importlib.util.spec_from_file_location(name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def alive(processes) -> list:
    """The processes (psutil) still running; one that has ended but is not reaped yet (a zombie) counts as ended."""
    import psutil

    running = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
    return running


def command_line(process) -> str:
    """A process's (psutil) command line, or "" if it has just ended."""
    import psutil

    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def make_tokenizer(vocab_size: int = 320, *, model_max_length: int = 128):
    """A byte-level BPE tokenizer (<pad> <s> </s> <unk>) that prepends <s>, trained on `LINES`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(LINES * 3, trainer)
    bos = [("<s>", bpe.token_to_id("<s>"))]
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=bos)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=model_max_length)


def make_model(tokenizer, *, seed: int = 0, hidden_size: int = 32, num_layers: int = 2):
    """A tiny randomly initialised LlamaForCausalLM (float32) sized to `tokenizer`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=num_layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=tokenizer.model_max_length, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained on a few lines (shared: do not mutate it)."""
    return make_tokenizer()


@pytest.fixture
def tiny_model(tiny_tokenizer):
    """A fresh tiny random Llama (seed 0) for each test."""
    return make_model(tiny_tokenizer)


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_tokenizer):
    """A directory holding a tiny random Llama and its tokenizer, written with `save_pretrained`."""
    directory = tmp_path / "tiny-model"
    make_model(tiny_tokenizer).save_pretrained(directory)
    tiny_tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(autouse=True)
def no_repository_archives(tmp_path_factory, monkeypatch):
    """Tests see no archived real-model runs unless they write their own: the repository's results/ would add a
    column to every verdict table. A test (or module fixture) that set ELASTICITY_ARCHIVES keeps its own."""
    import os

    from elasticity import archived

    if archived.ENV not in os.environ:
        monkeypatch.setenv(archived.ENV, str(tmp_path_factory.mktemp("no-archives")))
