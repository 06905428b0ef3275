"""The `elasticity` command: run chapters, build the book, list families and datasets, train, compress."""

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

import elasticity
from elasticity.config import UserError


def _run(args: argparse.Namespace) -> int:
    """Execute one chapter with papermill into runs/<family>/<chapter>.ipynb."""
    from elasticity import book, files, parallel, paths

    if args.help:
        print(args.usage())
        if args.chapter:
            listed = book.parameter_help(book.chapter_path(args.chapter))
            print(f"parameters of {args.chapter} (-p NAME VALUE):\n{listed}")
        return 0
    if args.chapter is None:
        raise UserError(f"a chapter is needed; accepted: {', '.join(book.chapters())}")
    workers = _workers(args)
    source = book.chapter_path(args.chapter)
    defaults = book.parameters(source)
    values = book.parse_values(source, args.parameter)  # each value as `elasticity.parameters` declares it
    family = str(values.get("family", defaults.get("family") or "default"))
    parallel.check_fits(workers, values.get("family", defaults.get("family")) or "tiny",
                        str(values.get("device", defaults.get("device")) or "cpu"))
    out_dir = files.check_output_folder(Path(args.out) if args.out else paths.runs_dir() / family)
    book.check_config(source, values)  # values that clash, refused in one line by the experiment's config
    archivable = book.archivable_configs(source, values) if args.archive else []
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{args.chapter}.ipynb"

    import jupytext
    import papermill

    if args.workers is not None:
        os.environ[parallel.ENV] = str(args.workers)  # read by the chapter's kernel
    from elasticity import progress

    notebook = jupytext.read(source)
    print(f"elasticity: running {source.name} with {values or 'its defaults'} -> {output}", file=sys.stderr)
    # a line per unit the kernel caches
    with progress.watch(args.chapter, progress.entries(book.chapter_units(source, values))):
        papermill.execute_notebook(
            notebook, str(output), parameters=book.kernel_parameters(values), kernel_name="python3", language="python",
            cwd=str(source.parent), progress_bar=args.progress,
        )
    print(output)
    if archivable:
        from elasticity import archived

        for module, cfg in archivable:
            print(archived.write(module, cfg, command=args.command_line))
    return 0


def _book(args: argparse.Namespace) -> int:
    from elasticity import book, compute, files, parallel, paths

    parallel.check_fits(parallel.workers(), "tiny", "cpu")  # the book's chapters run the tiny family on a CPU
    if args.path_output:
        files.check_output_folder(args.path_output)
    if args.scale:
        os.environ["ELASTICITY_SCALE"] = args.scale
    # The status in a child process: this one stays small (no torch) while the build runs under it, and watches
    # the cache entries of every chapter's units that the child lists, a line for each one the build computes.
    import subprocess
    import tempfile

    from elasticity import progress

    with tempfile.TemporaryDirectory(prefix="elasticity-book-") as tmp:
        listed = Path(tmp) / "entries.json"
        report = subprocess.run([sys.executable, "-m", "elasticity.cli", "status", "--entries", str(listed)],
                                capture_output=True, text=True)
        print(report.stdout or report.stderr, end="", file=sys.stderr, flush=True)
        units = progress.read_entries(listed) if listed.is_file() else []
    with progress.watch("book", units):
        # Every chapter's units first, so that no page of the build waits on training; then the pages, which read them.
        log = paths.cache_dir() / "compute.log"
        computed = compute.compute_all(log)
        if computed != 0:
            print(f"{compute.log_tail(log)}\nelasticity: computing the chapters' units failed (exit {computed}; its "
                  f"log: {log}); nothing was built. The units it finished are cached: a rerun resumes after them.",
                  file=sys.stderr)
            return computed
        return book.build(Path(args.path_output) if args.path_output else None)


def _workers(args: argparse.Namespace) -> int:
    """The --workers given (refused in one line unless positive), else ELASTICITY_WORKERS or 1."""
    from elasticity import parallel

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}; must be a positive integer (1: no worker processes)")
    return parallel.workers() if args.workers is None else args.workers


def _compute(args: argparse.Namespace) -> int:
    from elasticity import book, parallel

    chapters = args.chapter or list(book.chapters())
    for chapter in chapters:
        book.chapter_path(chapter)  # an unknown chapter is refused before any work
    workers = _workers(args)
    parallel.check_fits(workers, "tiny", "cpu")  # a chapter's defaults: the tiny family on a CPU
    from elasticity import compute

    computed = {chapter: compute.compute_units(chapter, workers, watch=args.progress) for chapter in chapters}
    print(f"computed {sum(computed.values())} training units"
          + (f" ({', '.join(f'{c}: {n}' for c, n in computed.items() if n)})" if any(computed.values()) else
             f"; those {'these chapters' if len(chapters) > 1 else 'the chapter'} read were all cached already"))
    return 0


def _status(args: argparse.Namespace) -> int:
    from elasticity import book

    if args.chapter is not None:
        book.chapter_path(args.chapter)  # an unknown chapter is refused before the experiments are imported
    if args.entries is not None:
        from elasticity import files

        files.check_output_file(args.entries)
    from elasticity import status

    print(status.report(args.chapter))
    if args.entries is not None:
        from elasticity import progress

        progress.write_entries(progress.entries(status.units(args.chapter)), args.entries)
    return 0


def _families(args: argparse.Namespace) -> int:
    from elasticity import models

    for name in models.FAMILIES:
        print(f"{name:24s} {models.describe(name)}")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from elasticity import data

    for name, spec in data.DATASETS.items():
        print(f"{name:24s} {spec.describe() if hasattr(spec, 'describe') else spec}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from elasticity import pretrain
    from elasticity.config import choice

    sizes = args.size or list(pretrain.sizes())
    for size in sizes:
        choice("size of family 'tiny'", size, pretrain.sizes())
    for size in sizes:
        print(pretrain.pretrain(size))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from elasticity import data, files, parameters

    _check_device(args.device)
    files.check_output_folder(args.out)
    parameters.check_family_size(args.family, args.size)
    examples = data.examples(args.dataset, "train", n=args.n, seed=args.seed, label=args.label)
    from elasticity import finetune, models, numerics

    config = finetune.FinetuneConfig(
        learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
        max_length=args.max_length, seed=args.seed, lora=args.lora,
    )
    with numerics.unit_threads():  # the threads of every unit, so that it matches one computed in the book
        model, tokenizer = models.load(args.family, size=args.size, device=args.device, lora=args.lora,
                                       seed=args.seed)
        result = finetune.finetune(model, tokenizer, examples, config, output_dir=Path(args.out))
    result.model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(json.dumps({"out": args.out, "steps": len(result.losses), "first_loss": result.losses[0],
                      "final_loss": result.final_loss}))
    return 0


def _positive(kind: type):
    """An argparse type: a number of `kind` above zero, else argparse's one-line refusal (exit 2)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r}; must be above zero")
        return value

    return parse


def _check_device(device: str) -> None:
    """Refuse, before any work, a device torch would reject."""
    from elasticity import config

    if not config.is_device(device):
        raise UserError(f"--device {device!r}; accepted: {config.DEVICES}")


def _compress(args: argparse.Namespace) -> int:
    from elasticity import files, parameters

    _check_device(args.device)
    files.check_input_output(args.file, args.output)
    parameters.check_family_size(args.family, args.size)
    from elasticity import archive

    stats = archive.compress_file(Path(args.file), Path(args.output), family=args.family, size=args.size,
                                  checkpoint=args.checkpoint, device=args.device)
    print(json.dumps(stats))
    return 0


def _decompress(args: argparse.Namespace) -> int:
    from elasticity import files

    _check_device(args.device)
    files.check_input_output(args.file, args.output)
    from elasticity import archive

    stats = archive.decompress_file(Path(args.file), Path(args.output), device=args.device)
    print(json.dumps(stats))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with its refusals in one line (`elasticity run: error: ...`, exit 2) like every other refusal of
    the command; `--help` still shows the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="elasticity", description=__doc__)
    parser.add_argument("--version", action="version", version=f"elasticity {elasticity.__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    run = verbs.add_parser("run", help="execute one chapter with papermill into runs/<family>/<chapter>.ipynb",
                           add_help=False)
    run.add_argument("chapter", nargs="?", help="a chapter's file stem, e.g. rebound")
    run.add_argument("-h", "--help", action="store_true",
                     help="show this help, and with CHAPTER its parameters (defaults and accepted values)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set a parameter of the chapter (a Python literal; strings may be bare)")
    run.add_argument("--out", help="output directory (default: runs/<family>/)")
    run.add_argument("--workers", type=int, help="worker processes for the chapter's units (ELASTICITY_WORKERS; "
                     "default 1): several units share a GPU, which one unit leaves mostly idle")
    run.add_argument("--archive", action="store_true",
                     help="then archive its measured tables with provenance as results/<family>/<experiment>.json")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide papermill's progress bar")
    run.set_defaults(handler=_run, usage=run.format_help)

    book = verbs.add_parser("book", help="compute every chapter's training units, then build the whole book strictly "
                            "(-W --keep-going); its pages only read them")
    book.add_argument("--scale", choices=["default", "smoke"], help="the scale every chapter runs at")
    book.add_argument("--path-output", help="where _build/ goes (default: the repository root)")
    book.set_defaults(handler=_book)

    comp_units = verbs.add_parser("compute", help="compute the training units the chapters read with their defaults "
                                  "(what `elasticity book` does before its pages run): each one cached as it finishes")
    comp_units.add_argument("chapter", nargs="*", help="chapters' file stems (default: every chapter of the book)")
    comp_units.add_argument("--workers", type=int, help="worker processes (ELASTICITY_WORKERS; default 1)")
    comp_units.add_argument("--no-progress", dest="progress", action="store_false",
                            help="no line per unit (`elasticity book` prints its own)")
    comp_units.set_defaults(handler=_compute)

    stat = verbs.add_parser("status", help="each chapter's training units: present, stale (and why) or missing, "
                            "and the time to recompute them")
    stat.add_argument("chapter", nargs="?", help="one chapter's file stem, listing its units that are not present")
    stat.add_argument("--entries", type=Path, metavar="FILE",
                      help="also write the units' cache entries to FILE as JSON (what `elasticity book` watches)")
    stat.set_defaults(handler=_status)

    verbs.add_parser("families", help="list the model families").set_defaults(handler=_families)
    verbs.add_parser("datasets", help="list the datasets").set_defaults(handler=_datasets)

    pre = verbs.add_parser("pretrain", help="pre-train the tiny family (cached, resumable)")
    pre.add_argument("--size", action="append", help="a tiny size (repeatable; default: all)")
    pre.set_defaults(handler=_pretrain)

    fine = verbs.add_parser("finetune", help="supervised fine-tuning of a family on a dataset")
    fine.add_argument("--family", default="tiny")
    fine.add_argument("--size")
    fine.add_argument("--dataset", required=True)
    fine.add_argument("--label", help="a label of the dataset, e.g. positive")
    fine.add_argument("--n", type=_positive(int), help="number of examples (default: all)")
    fine.add_argument("--epochs", type=_positive(float), default=1.0)
    fine.add_argument("--learning-rate", type=_positive(float), default=1e-4)
    fine.add_argument("--batch-size", type=_positive(int), default=8)
    fine.add_argument("--max-length", type=_positive(int), default=128)
    fine.add_argument("--lora", action="store_true", help="train LoRA adapters instead of all weights")
    fine.add_argument("--seed", type=int, default=0)
    fine.add_argument("--device", default="cpu")
    fine.add_argument("--out", required=True, help="directory for checkpoints and the final model")
    fine.set_defaults(handler=_finetune)

    comp = verbs.add_parser("compress", help="arithmetic-code a file with a language model")
    comp.add_argument("file")
    comp.add_argument("-o", "--output", required=True)
    comp.add_argument("--family", default="tiny")
    comp.add_argument("--size")
    comp.add_argument("--checkpoint", help="a fine-tuned checkpoint directory to code with")
    comp.add_argument("--device", default="cpu")
    comp.set_defaults(handler=_compress)

    dec = verbs.add_parser("decompress", help="restore a file written by `elasticity compress`")
    dec.add_argument("file")
    dec.add_argument("-o", "--output", required=True)
    dec.add_argument("--device", default="cpu")
    dec.set_defaults(handler=_decompress)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `elasticity` console script; bad input exits 2 with a one-line message."""
    args = _parser().parse_args(argv)
    args.command_line = shlex.join(["elasticity", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.handler(args)
    except UserError as error:
        print(f"elasticity: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
