"""From-scratch pre-training of the tiny family: tokenizer, Llama configs, checkpoints at token budgets."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elasticity import config, data, paths, results
from elasticity.config import UserError

# Special tokens of the tiny tokenizer: every document is fed as <s> text </s>; <pad> only pads batches.
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


@dataclass(frozen=True)
class TokenizerConfig:
    """A byte-level BPE tokenizer trained on the training split of the pre-training corpus."""

    vocab_size: int  # including the 256 byte symbols and the 4 special tokens
    num_documents: int | None  # train on the first n documents of the corpus; None: all of them
    model_max_length: int  # longest sequence the models take, tokens

    def __post_init__(self):
        config.check_types(self)
        if self.vocab_size < 260:
            raise UserError(f"TokenizerConfig.vocab_size = {self.vocab_size}; a byte-level BPE needs >= 260")
        if self.num_documents is not None and self.num_documents < 1:
            raise UserError(f"TokenizerConfig.num_documents = {self.num_documents}; expected >= 1 or None")


@dataclass(frozen=True)
class PretrainConfig:
    """One tiny size: its Llama architecture and the pre-training run that saves its budget checkpoints.

    The learning rate warms up linearly for `warmup_steps`, then follows a cosine from `learning_rate`
    down to `min_lr_ratio * learning_rate` at the largest budget; the smaller budgets are checkpoints
    taken along that one run (as TinyLlama's intermediate checkpoints are), not separately annealed runs.
    """

    size: str  # the key users type (s, m, l)
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    tokenizer: TokenizerConfig
    seq_len: int  # tokens per training sequence
    batch_size: int  # sequences per optimizer step
    budgets_tokens: tuple[int, ...]  # checkpoints, in training tokens; each a multiple of seq_len*batch_size
    learning_rate: float  # peak learning rate of AdamW
    warmup_steps: int
    min_lr_ratio: float  # final learning rate / peak
    weight_decay: float
    seed: int
    state_every_steps: int  # save a resumable state this often (and at every budget)

    def __post_init__(self):
        config.check_types(self)
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "seq_len", "batch_size",
                     "state_every_steps"):
            if getattr(self, name) < 1:
                raise UserError(f"PretrainConfig.{name} = {getattr(self, name)}; expected >= 1")
        if self.hidden_size % self.num_heads:
            raise UserError(f"PretrainConfig.hidden_size = {self.hidden_size} is not a multiple of "
                            f"num_heads = {self.num_heads}")
        if self.seq_len > self.tokenizer.model_max_length:
            raise UserError(f"PretrainConfig.seq_len = {self.seq_len} exceeds the tokenizer's "
                            f"model_max_length = {self.tokenizer.model_max_length}")
        step = self.tokens_per_step
        if not self.budgets_tokens or list(self.budgets_tokens) != sorted(set(self.budgets_tokens)):
            raise UserError(f"PretrainConfig.budgets_tokens = {self.budgets_tokens}; expected increasing values")
        for budget in self.budgets_tokens:
            if budget <= 0 or budget % step:
                raise UserError(f"PretrainConfig.budgets_tokens has {budget}; expected positive multiples of "
                                f"seq_len * batch_size = {step}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise UserError(f"PretrainConfig.min_lr_ratio = {self.min_lr_ratio}; expected a value in [0, 1]")
        if self.learning_rate <= 0:
            raise UserError(f"PretrainConfig.learning_rate = {self.learning_rate}; expected > 0")

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step."""
        return self.seq_len * self.batch_size

    @property
    def total_steps(self) -> int:
        """Optimizer steps to the largest budget."""
        return self.budgets_tokens[-1] // self.tokens_per_step


_TOKENIZERS = {
    "default": TokenizerConfig(vocab_size=2048, num_documents=None, model_max_length=256),
    "smoke": TokenizerConfig(vocab_size=384, num_documents=2000, model_max_length=128),
}

# Sizes and budgets were chosen by measuring on the 2-core CPU of the build machine (fp32, 2 threads, batch
# 16 x 128 tokens): pre-training s (90k parameters), m (280k) and l (1.05M) to the largest budget (819,200
# tokens) took 26 s, 34 s and 65 s, and their held-out bits per byte there were 2.654, 2.548 and 2.499.
# An earlier family of 0.23M, 1.05M and 3.69M parameters failed the size ordering: its 3.69M model
# (hidden 256) ended worst at every budget, at 2e-3 and at 5e-3 alike (2.598 and 2.611 against 2.499), being
# far too large for 0.8M tokens (0.2 tokens per parameter). Learning rates were swept at the largest budget:
# l at 2e-3, 3e-3 and 4e-3 gave 2.540, 2.499 and 2.522; m at 3e-3 and 4e-3 gave 2.589 and 2.548.
_BUDGETS = (51_200, 102_400, 204_800, 409_600, 819_200)
_COMMON = dict(seq_len=128, batch_size=16, budgets_tokens=_BUDGETS, warmup_steps=20, min_lr_ratio=0.1,
               weight_decay=0.1, seed=0, state_every_steps=50)
_SMOKE = dict(seq_len=64, batch_size=8, budgets_tokens=(2048, 4096, 8192), warmup_steps=2, min_lr_ratio=0.1,
              weight_decay=0.1, seed=0, state_every_steps=4)

PRESETS: dict[str, dict[str, PretrainConfig]] = {
    "default": {
        "s": PretrainConfig("s", 32, 2, 2, 86, _TOKENIZERS["default"], learning_rate=5e-3, **_COMMON),
        "m": PretrainConfig("m", 64, 3, 2, 172, _TOKENIZERS["default"], learning_rate=4e-3, **_COMMON),
        "l": PretrainConfig("l", 128, 4, 4, 344, _TOKENIZERS["default"], learning_rate=3e-3, **_COMMON),
    },
    "smoke": {
        "s": PretrainConfig("s", 16, 1, 2, 32, _TOKENIZERS["smoke"], learning_rate=1e-2, **_SMOKE),
        "m": PretrainConfig("m", 32, 1, 2, 64, _TOKENIZERS["smoke"], learning_rate=1e-2, **_SMOKE),
        "l": PretrainConfig("l", 48, 2, 2, 96, _TOKENIZERS["smoke"], learning_rate=1e-2, **_SMOKE),
    },
}


def sizes() -> tuple[str, ...]:
    """The tiny sizes at the current scale, smallest first."""
    return tuple(PRESETS[config.scale()])


def preset(size: str) -> PretrainConfig:
    """The pre-training config of one tiny size at the current scale (`elasticity.config.scale()`)."""
    return PRESETS[config.scale()][config.choice("size of family 'tiny'", size, sizes())]


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def _corpus(num_documents: int | None) -> list[str]:
    documents = data.pretraining_corpus("train")
    return documents if num_documents is None else documents[:num_documents]


def _build_tokenizer(cfg: TokenizerConfig, directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=UNK))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=[PAD, BOS, EOS, UNK],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(_corpus(cfg.num_documents), trainer)
    # The tokenizer prepends <s> (as Llama's does); the end of a document is appended by the caller.
    bpe.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bpe.token_to_id(BOS))])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                        unk_token=UNK, model_max_length=cfg.model_max_length)
    tokenizer.save_pretrained(directory)


def tokenizer_dir(cfg: TokenizerConfig) -> Path:
    """The directory of the trained tokenizer (trained and cached on first use)."""
    return _artifact("tiny-tokenizer", cfg, _build_tokenizer)


def load_tokenizer(cfg: TokenizerConfig):
    """The trained tiny tokenizer (a `PreTrainedTokenizerFast`)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir(cfg))


# --------------------------------------------------------------------------------------------------
# Cache keys.
#
# A tiny tokenizer or checkpoint depends on its config, on the code of this module, on the text of the
# corpus it is trained on and on the versions of torch, transformers and tokenizers. It is keyed by exactly
# these. It is deliberately NOT keyed by `results.code_fingerprint`, which follows every imported
# `elasticity` module: an edit of how results are cached or of how a sentiment dataset is listed would
# otherwise throw away minutes of pre-training, although the models would come out the same. A change of
# the corpus text, by contrast, changes the key even when no code changed.
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def corpus_digest(num_documents: int | None) -> str:
    """SHA-256 (16 hex digits) of the training documents a tokenizer or model of this config sees."""
    digest = hashlib.sha256()
    for document in _corpus(num_documents):
        digest.update(document.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def _code_digest() -> str:
    versions = [_version(name) for name in ("torch", "transformers", "tokenizers")]
    payload = Path(__file__).read_bytes() + json.dumps(versions).encode()
    return hashlib.sha256(payload).hexdigest()


def _version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def artifact_key(cfg: TokenizerConfig | PretrainConfig) -> str:
    """The cache key of a tokenizer or pre-training config: config hash, then code + corpus hash."""
    tokenizer = cfg if isinstance(cfg, TokenizerConfig) else cfg.tokenizer
    content = hashlib.sha256((_code_digest() + corpus_digest(tokenizer.num_documents)).encode()).hexdigest()
    return f"{results.config_key(cfg)}-{content[:16]}"


def _artifact(kind: str, cfg, build: Callable[[object, Path], None]) -> Path:
    """A directory built once per key (`artifact_key`) by `build(cfg, directory)` (`results.build_once`)."""
    target = paths.cache_dir() / "results" / kind / artifact_key(cfg)
    return results.build_once(target, lambda tmp: build(cfg, tmp), cfg)


# --------------------------------------------------------------------------------------------------
# Model and data
# --------------------------------------------------------------------------------------------------


def llama_config(cfg: PretrainConfig, tokenizer):
    """The `LlamaConfig` of one tiny size (tied embeddings, no dropout, no biases)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
                       intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
                       num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
                       max_position_embeddings=cfg.tokenizer.model_max_length, tie_word_embeddings=True,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)


def num_parameters(cfg: PretrainConfig) -> int:
    """Number of parameters of one tiny size (tied embeddings counted once), computed on the meta device."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = load_tokenizer(cfg.tokenizer)
    with torch.device("meta"):
        model = LlamaForCausalLM(llama_config(cfg, tokenizer))
    return sum(p.numel() for p in model.parameters())


def _token_blocks(cfg: PretrainConfig, tokenizer) -> np.ndarray:
    """The training stream, cut into blocks: int64 array of shape (num_blocks, seq_len).

    Each document is <s> text </s>; documents are concatenated in corpus order and the stream is cut into
    consecutive blocks of `seq_len` tokens (a block may span documents; the remainder is dropped).
    """
    documents = _corpus(cfg.tokenizer.num_documents)
    ids = tokenizer(documents, add_special_tokens=True, verbose=False)["input_ids"]
    eos = tokenizer.eos_token_id
    stream = np.fromiter((t for doc in ids for t in (*doc, eos)), dtype=np.int64)
    num_blocks = len(stream) // cfg.seq_len
    if num_blocks < cfg.batch_size:
        raise UserError(f"the pre-training corpus has {len(stream)} tokens, fewer than one batch")
    return stream[: num_blocks * cfg.seq_len].reshape(num_blocks, cfg.seq_len)


def _permutation_cache(cfg: PretrainConfig, n: int) -> Callable[[int], np.ndarray]:
    cache: dict[int, np.ndarray] = {}

    def permutation(epoch: int) -> np.ndarray:
        if epoch not in cache:
            cache.clear()
            cache[epoch] = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        return cache[epoch]

    return permutation


def learning_rate(cfg: PretrainConfig, step: int) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warm-up, then cosine to the final budget."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.learning_rate * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def budget_dirname(budget_tokens: int) -> str:
    """Name of a budget checkpoint's directory inside a size's artifact."""
    return f"budget-{budget_tokens:012d}"


# --------------------------------------------------------------------------------------------------
# Training, resumable
# --------------------------------------------------------------------------------------------------


def _partial_dir(cfg: PretrainConfig) -> Path:
    # Same key as the finished artifact, so a state is never resumed by other code or on another corpus.
    return paths.cache_dir() / "partial" / "tiny-pretrain" / artifact_key(cfg)


def save_quietly(model, tokenizer, directory: Path) -> None:
    """`save_pretrained` of a model and its tokenizer without the library's progress bars."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _save_state(directory: Path, model, optimizer, step: int, train_seconds: float, losses: list[float]) -> None:
    import torch

    tmp = directory / "state.tmp"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "train_seconds": train_seconds, "losses": losses}, tmp)
    tmp.replace(directory / "state.pt")  # atomic: a crash leaves the previous state intact


def _train(cfg: PretrainConfig, directory: Path, *, progress: bool = True,
           on_step: Callable[[int, float], None] | None = None) -> None:
    """Pre-train one size from scratch, writing budget checkpoints and `pretrain.json` into `directory`.

    Work in progress lives in a partial directory under the cache: a resumable state every
    `state_every_steps` steps and every finished budget checkpoint. A rerun after an interruption resumes
    from the last state and ends with the same weights as an uninterrupted run (the batches and learning
    rates are functions of the step, the model has no dropout, and the optimizer state is restored).

    Args:
        on_step: called as on_step(step, loss) after each optimizer step (1-based step); used by tests to
            interrupt a run.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import LlamaForCausalLM

    tokenizer = load_tokenizer(cfg.tokenizer)
    blocks = _token_blocks(cfg, tokenizer)
    partial = _partial_dir(cfg)
    partial.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(llama_config(cfg, tokenizer))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.learning_rate, betas=(0.9, 0.95), eps=1e-8)
    step, train_seconds, losses = 0, 0.0, []
    if (partial / "state.pt").is_file():
        state = torch.load(partial / "state.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, train_seconds, losses = state["step"], state["train_seconds"], state["losses"]
    resumed_at = step

    permutation = _permutation_cache(cfg, len(blocks))
    budget_steps = {b // cfg.tokens_per_step: b for b in cfg.budgets_tokens}
    model.train()
    bar = tqdm(total=cfg.total_steps, initial=step, desc=f"pre-train tiny-{cfg.size}", disable=not progress,
               unit="step")
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    while step < cfg.total_steps:
        start = time.perf_counter()
        rows = [permutation(g // len(blocks))[g % len(blocks)]
                for g in range(step * cfg.batch_size, (step + 1) * cfg.batch_size)]
        batch = torch.from_numpy(blocks[rows])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        loss = model(input_ids=batch, labels=batch).loss
        if not torch.isfinite(loss):
            raise RuntimeError(f"pre-training tiny-{cfg.size} diverged at step {step + 1} (loss {loss.item()}); "
                               f"lower learning_rate (the last saved state is kept in {partial})")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(loss.item())
        train_seconds += time.perf_counter() - start
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if step in budget_steps:
            target = partial / budget_dirname(budget_steps[step])
            shutil.rmtree(target, ignore_errors=True)
            save_quietly(model, tokenizer, target)
        if step in budget_steps or step % cfg.state_every_steps == 0:
            _save_state(partial, model, optimizer, step, train_seconds, losses)
        if on_step is not None:
            on_step(step, losses[-1])
    bar.close()
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start

    for budget in cfg.budgets_tokens:
        shutil.move(partial / budget_dirname(budget), directory / budget_dirname(budget))
    record = {
        "size": cfg.size,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "budgets_tokens": list(cfg.budgets_tokens),
        "train_seconds": train_seconds,
        "tokens_per_second": cfg.budgets_tokens[-1] / train_seconds if train_seconds else None,
        "threads": torch.get_num_threads(),
        # CPU time / wall time of the last session (about the thread count on a quiet machine; lower
        # means the machine was shared and the times above are inflated).
        "cpu_per_wall": cpu / wall if wall and step > resumed_at else None,
        "resumed_at_step": resumed_at,
        "losses": losses,
    }
    (directory / "pretrain.json").write_text(json.dumps(record))


def pretrain(size: str, *, progress: bool = True, cfg: PretrainConfig | None = None,
             on_step: Callable[[int, float], None] | None = None) -> Path:
    """Pre-train one tiny size with all its budget checkpoints (cached, resumable); return its directory.

    The directory holds one sub-directory per budget (`budget_dirname(tokens)`, each a `save_pretrained`
    model with its tokenizer) and `pretrain.json` (parameters, training time, throughput, losses).
    An interrupted run resumes from its last saved state on the next call.

    Args:
        size: a key of `sizes()` (s, m, l).
        progress: show a tqdm bar.
        cfg: the config to use instead of the preset of `size` at the current scale (tests).
        on_step: called as on_step(step, loss) after every optimizer step.
    """
    cfg = cfg or preset(size)

    def build(c: PretrainConfig, directory: Path) -> None:
        _train(c, directory, progress=progress, on_step=on_step)

    target = _artifact("tiny-pretrain", cfg, build)
    shutil.rmtree(_partial_dir(cfg), ignore_errors=True)
    return target


def checkpoint_dir(size: str, budget_tokens: int | None = None, *, cfg: PretrainConfig | None = None) -> Path:
    """The directory of one budget checkpoint of a tiny size (pre-training it first if needed).

    Args:
        budget_tokens: one of the size's budgets; None means the largest (the final model).
    """
    cfg = cfg or preset(size)
    if budget_tokens is None:
        budget_tokens = cfg.budgets_tokens[-1]
    config.choice("budget_tokens of family 'tiny'", budget_tokens, cfg.budgets_tokens)
    return pretrain(size, cfg=cfg) / budget_dirname(budget_tokens)


def record(size: str, *, cfg: PretrainConfig | None = None) -> dict:
    """The `pretrain.json` record of a tiny size (pre-training it first if needed)."""
    return json.loads((pretrain(size, cfg=cfg) / "pretrain.json").read_text())
