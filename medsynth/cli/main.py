"""Command line: `python -m medsynth {tasks,build,export,judge,report,train,predict,bench,distill} ...`.

User mistakes (MedsynthError) print one line to stderr and exit non-zero; Ctrl-C says how to resume. Nothing
here does the work itself: each command parses options and calls the module for its step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from medsynth.errors import MedsynthError, UsageError
from medsynth.hashing import DEFAULT_SEED


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show each option's default, except where the help already states it (values that come from a config
    object are named there) or the option is an on/off switch; an unset default reads "(default: none)"."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        switch = action.default is False or action.default == argparse.SUPPRESS
        if "default" in text or switch or not action.option_strings:
            return text
        if action.default is None or action.default == []:
            return f"{text} (default: none)"
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line too (the full usage stays one `--help` away); every parser shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _llm_defaults() -> dict:
    """SessionConfig's defaults: the CLI shows and uses the same values a notebook's SessionConfig() gets."""
    from medsynth.llm.session import SessionConfig

    return {name: f.default for name, f in SessionConfig.model_fields.items()}


def warn_deprecated(old: str, new: str) -> None:
    """One warning line on stderr for a renamed flag that still works (published commands use it)."""
    print(f"medsynth: warning: {old} is deprecated; use {new}", file=sys.stderr)


class _DeprecatedAlias(argparse.Action):
    """An old flag spelling (train's `--task ner|re`, now `--kind`): same destination, one warning line."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option_string: str | None = None) -> None:
        warn_deprecated(str(option_string), "--kind")
        setattr(namespace, self.dest, value)


class _BenchModel(argparse.Action):
    """bench's `--model NAME=DIR` (a trained model folder, repeatable); a value without `=` is the old
    `--model LLM_NAME` spelling of `--llm-model`, kept working with one warning line."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option_string: str | None = None) -> None:
        if "=" not in value:
            warn_deprecated("--model for the LLM's model name", "--llm-model (--model now takes NAME=DIR)")
            namespace.llm_model = value
            return
        setattr(namespace, self.dest, [*getattr(namespace, self.dest, []), value])


class _DeprecatedLLMModel(argparse.Action):
    """`--model NAME` in build/judge: the old spelling of `--llm-model`."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, value: Any,
                 option_string: str | None = None) -> None:
        warn_deprecated(f"{option_string} for the LLM's model name", "--llm-model")
        namespace.llm_model = value


def _add_llm_options(p: argparse.ArgumentParser, model_alias: bool = True) -> None:
    """The LLM endpoint options shared by every command that talks to an LLM. `model_alias`: accept the old
    `--model NAME` for `--llm-model` (commands whose `--model` means a trained model folder pass False)."""
    d = _llm_defaults()
    g = p.add_argument_group("LLM endpoint (default: the embedded local model on 127.0.0.1)")
    g.add_argument("--llm", default=d["llm"], help="embedded model: qwen, tiny (SmolLM2-135M, tests), or a .gguf path")
    g.add_argument("--base-url", action="append", default=None,
                   help="any OpenAI-compatible endpoint (also OPENAI_BASE_URL); key from OPENAI_API_KEY. Repeat it "
                        "(or give a comma-separated list) to spread requests over several servers of one model")
    g.add_argument("--llm-model", dest="llm_model", default=None,
                   help="model name at --base-url (default: OPENAI_MODEL, else the endpoint's only model)")
    if model_alias:
        g.add_argument("--model", dest="llm_model", action=_DeprecatedLLMModel, default=argparse.SUPPRESS,
                       metavar="LLM_MODEL", help="deprecated spelling of --llm-model")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for the embedded model (default: all cores; use fewer to keep the machine usable)")
    g.add_argument("--concurrency", type=_positive_int, default=None,
                   help="requests in flight (none: the embedded server's slot count, 1 for --base-url); "
                        "with several --base-url, on each endpoint")
    g.add_argument("--allow-mixed-models", action="store_true",
                   help="accept --base-url endpoints whose GET /models lists differ (default: refuse them)")
    g.add_argument("--server", choices=["auto", "llama-server", "llama-cpp-python"], default=None,
                   help="embedded engine (none: $MEDSYNTH_SERVER, else auto = llama-server when `make setup` "
                        "built it, else llama-cpp-python)")
    g.add_argument("--slots", type=_positive_int, default=None,
                   help="parallel slots of the embedded llama-server (none: 4)")
    g.add_argument("--temperature", type=float, default=d["temperature"], help="sampling temperature")
    g.add_argument("--max-tokens", type=_positive_int, default=d["max_tokens"],
                   help="cap on tokens per answer")
    g.add_argument("--timeout", type=float, default=d["timeout"],
                   help="seconds per read before a retry; a request's total time is capped too")
    g.add_argument("--structured", choices=["auto", "llamacpp", "openai", "plain"], default=d["structured"],
                   help="structured-output form: auto (per endpoint), llamacpp (json_object+schema grammar), "
                        "openai (json_schema: OpenAI, vLLM, SGLang), plain (JSON asked in the prompt only)")
    g.add_argument("--no-cache", action="store_true", help="bypass the response cache")


def session_config(args: argparse.Namespace):
    """The LLM options as a SessionConfig (library code never sees the Namespace)."""
    from medsynth.llm.session import SessionConfig

    return SessionConfig(llm=args.llm, base_url=args.base_url, model=args.llm_model, concurrency=args.concurrency,
                         temperature=args.temperature, max_tokens=args.max_tokens, timeout=args.timeout,
                         cache=not args.no_cache, structured=args.structured, threads=args.threads,
                         allow_mixed_models=getattr(args, "allow_mixed_models", False),
                         server=getattr(args, "server", None), slots=getattr(args, "slots", None),
                         progress=not getattr(args, "no_progress", False))


def _session(args: argparse.Namespace, log_dir: Path | None = None):
    from medsynth.llm.session import llm_session

    return llm_session(session_config(args), log_dir=log_dir)


def cmd_tasks(args: argparse.Namespace) -> int:
    from medsynth.spec import registry

    for spec in sorted(registry().values(), key=lambda s: s.name):
        rels = f"  relations: {', '.join(r.name for r in spec.relations)}" if spec.relations else ""
        print(f"{spec.name:<16} {spec.registry_name:<20} {spec.kind:<4} labels: {', '.join(spec.label_names)}{rels}")
    return 0


def generate_or_export(args: argparse.Namespace, out: Path, cfg, already_built, export_existing, run) -> dict:
    """The shared tail of every `build` kind: re-export a finished run without starting any LLM, else open the
    LLM session (restartable local server) and run the build; returns the build's stats."""
    out.mkdir(parents=True, exist_ok=True)
    if already_built(cfg) and args.base_url is None:
        return export_existing(cfg)  # nothing to generate: no need to start the local LLM at all
    with _session(args, log_dir=out) as session:
        if "served_by" in type(cfg).model_fields:
            cfg = cfg.model_copy(update={"served_by": session.served_by()})
        return run(cfg, session.client, session.model_name, session.restart)


def cmd_build(args: argparse.Namespace) -> int:
    from medsynth.generate.build import BuildConfig, already_built, export_existing, run_build
    from medsynth.spec import get_task

    if args.kind == "chat":  # Baize self-chat dialogues: no task, no labels
        from medsynth.cli.chat import build_command

        if args.annotate or args.reference:
            raise UsageError("--annotate and --reference apply to `build ner` / `build re`, not chat")
        if args.engine != "local":
            raise UsageError("`build chat` runs on the local engine only (leave --engine at local)")
        if args.out:
            from medsynth.data.store import check_out_dir

            check_out_dir(Path(args.out), force=args.force)
        args.n = args.n or 200
        return build_command(args)
    default = {"ner": "ner", "re": "cdr"}[args.kind]
    task = get_task(args.task_name or (None if args.task_file else default), args.task_file)
    if task.kind != args.kind:  # a `build re` run exports hf/, conll/ and spacy/ too: it serves NER training
        raise UsageError(f"task {task.name!r} is a {task.kind} task; use `build {task.kind}`")
    if task.kind == "re" and args.format != "json":
        raise UsageError("`build re` needs --format json (inline markup cannot state relations)")
    out = Path(args.out or f"runs/{args.kind}")
    from medsynth.data.store import check_out_dir

    check_out_dir(out, force=args.force)
    cfg = BuildConfig(task=task, n=args.n or 200, out=out, seed=args.seed, format=args.format,
                      temperature=args.temperature, max_tokens=args.max_tokens, progress=not args.no_progress,
                      curate=_curate_config(args, task, check_span_words=not args.reference), engine=args.engine)
    if args.annotate:
        cfg = _annotate_config(cfg, args)
    elif args.votes != 1:
        raise UsageError("--votes applies to --annotate (generated sentences carry their planned labels)")
    if args.reference:
        cfg = _reference_config(cfg, args)
    if cfg.engine == "ray":  # before any LLM starts: Ray missing, or an option it does not run, is one line
        from medsynth.generate.ray_engine import check_supported, import_ray

        check_supported(cfg)
        import_ray()
    stats = generate_or_export(args, out, cfg, already_built, export_existing, run_build)
    print(f"kept {stats['kept']}/{stats['requested']} examples in {out} "
          f"({stats['rejected']} rejected; {stats['llm_calls']} LLM calls, {stats['cache_hits']} cache hits)")
    return 0


def _annotate_config(cfg, args: argparse.Namespace):
    """Annotate mode: label the texts of --annotate instead of generating; --n caps how many (default all)."""
    from medsynth.generate.annotate import read_corpus

    if args.reference:
        raise UsageError("--reference steers generation plans; annotate mode labels given texts and plans nothing")
    if cfg.task.kind != "ner":
        raise UsageError("--annotate labels entities only; use `build ner`")
    if args.format != "json":
        raise UsageError("--annotate uses the zero-shot JSON prompt; leave --format at json")
    if not 1 <= args.votes <= 15:
        raise UsageError(f"--votes must be between 1 and 15, not {args.votes}")
    corpus = read_corpus(args.annotate)  # bad input fails here, before any store is opened
    n = min(args.n or len(corpus.texts), len(corpus.texts))
    return cfg.model_copy(update={"annotate": Path(args.annotate), "n": n, "votes": args.votes})


def _reference_config(cfg, args: argparse.Namespace):
    """Reference matching: the planner follows the reference's length / mention / label distributions."""
    from medsynth.generate.reference import reference_stats

    from medsynth.generate.conventions import with_conventions

    ref = reference_stats(args.reference, cfg.task)
    stored = _resumed_conventions(Path(args.out))
    conventions = ref.conventions if stored is None else stored
    task = with_conventions(cfg.task, conventions)  # labels gain the reference's span conventions
    return cfg.model_copy(update={"plan_stats": ref.stats, "reference_card": ref.card_summary(), "task": task,
                                  "span_conventions": conventions or None,
                                  "curate": _curate_config(args, task)})


def _resumed_conventions(out: Path) -> dict | None:
    """The span conventions a run being resumed was started with (None for a new run): a resumed run keeps its
    prompts even when a later medsynth derives conventions differently from the same reference. Any other change
    (another reference, other options) still fails the run-identity check as before."""
    from medsynth.data.store import RunStore

    if not (out / "store.sqlite").is_file():
        return None
    with RunStore(out, lock=False) as store:
        return store.identity().get("span_conventions") if store.count_examples() else None


def _train_config(args: argparse.Namespace, **defaults: Any):
    """TrainConfig from the small-model options: only the options the user gave are passed (so `--epochs`
    without `--min-steps` drops the step floor, see TrainConfig); `defaults` fill options the user left unset."""
    from medsynth.train.fit import TrainConfig

    fields = {"model": args.encoder, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "max_length": args.max_length, "patience": args.patience, "seed": args.seed,
              "min_score": getattr(args, "min_score", None), "use_weights": getattr(args, "use_weights", False),
              "device": args.device, "max_steps": args.max_steps, "min_steps": args.min_steps,
              "min_validation": args.min_validation}
    given = {k: v for k, v in fields.items() if v is not None}
    return TrainConfig(**{**defaults, **given})


def _add_weighting_options(p: argparse.ArgumentParser) -> None:
    """Judge-score controls (NER): a hard threshold or soft loss weights, for `train` and `bench`'s synthetic models."""
    p.add_argument("--min-score", type=float, default=None,
                   help="drop examples whose judge score is below this (default: keep all)")
    p.add_argument("--use-weights", action="store_true", help="weight the loss by each example's weight (score/5)")


def _train_defaults() -> dict[str, Any]:
    """TrainConfig's defaults, so `--help` shows what a notebook's TrainConfig() gets (REConfig's differ: named)."""
    from medsynth.train.fit import TrainConfig
    from medsynth.train.rel import REConfig

    ner = {name: f.default for name, f in TrainConfig.model_fields.items()}
    rel = {name: f.default for name, f in REConfig.model_fields.items()}
    return {k: (f"{v}" if rel.get(k) == v else f"{v}; relations {rel.get(k)}") for k, v in ner.items()}


def _add_train_options(p: argparse.ArgumentParser, title: str = "") -> None:
    d = _train_defaults()
    g = p.add_argument_group(title or "small model (defaults: TrainConfig; relation models: REConfig)")
    g.add_argument("--encoder", default=None,
                   help=f"minilm (packaged MiniLM-L6) or any HF path or id (default: {d['model']})")
    g.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"passes over the data; given, it is honoured exactly (default: {d['epochs']}, "
                        "or more to reach --min-steps)")
    g.add_argument("--min-steps", type=int, default=None,
                   help=f"train at least this many steps (more epochs on small data) and never stop early before "
                        f"them (default: {d['min_steps']} without --epochs, 0 with --epochs)")
    g.add_argument("--batch-size", type=_positive_int, default=None, help=f"examples per step (default: {d['batch_size']})")
    g.add_argument("--lr", type=float, default=None, help=f"peak learning rate, AdamW (default: {d['lr']})")
    g.add_argument("--max-length", type=_positive_int, default=None,
                   help=f"subword window; longer sentences are strided (default: {d['max_length']})")
    g.add_argument("--patience", type=_positive_int, default=None,
                   help=f"early-stopping patience in epochs (default: {d['patience']})")
    g.add_argument("--min-validation", type=_positive_int, default=None,
                   help="with fewer validation examples than this, train on all data without validation or early "
                        f"stopping (default: {d['min_validation']})")
    g.add_argument("--max-steps", type=_positive_int, default=None,
                   help="stop after this many steps, for quick looks (default: no cap)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                   help=f"auto: CUDA when torch sees a GPU (default: {d['device']})")
    g.add_argument("--marker", choices=["mask", "tags"], default=None,
                   help="relation models: entities replaced by @LABEL$ (mask) or wrapped in [E1]..[/E2] (tags) "
                        "(default: mask)")


def cmd_train(args: argparse.Namespace) -> int:
    if args.task_kind == "re":
        from medsynth.cli.rel import train_command

        return train_command(args)
    if args.backend == "spacy":
        from medsynth.train.spacy_ner import train_spacy

        if len(args.data) != 1 or ":weight=" in args.data[0]:
            raise UsageError("--backend spacy trains on one medsynth run; combine sources with the transformers "
                             "backend", field="--data", value=args.data)
        metrics = train_spacy(Path(args.data[0]), Path(args.out), max_steps=args.max_steps, seed=args.seed)
        print(f"saved spaCy pipeline to {metrics['model_dir']}")
        return 0
    from medsynth.data.corpora import parse_label_map
    from medsynth.train.sources import train_from_sources

    metrics = train_from_sources(args.data, Path(args.out), _train_config(args), "ner", not args.no_progress,
                                 parse_label_map(args.label_map))
    f1 = metrics.get("best_val_f1", metrics.get("val_f1"))
    done = f"{metrics['epochs_run']} epochs, {metrics['steps']} steps"
    print(f"saved model to {args.out} ({done}; " + (f"validation F1 {100 * f1:.1f})" if isinstance(f1, float)
                                                   else "no validation)"))
    return 0


def _add_decode_options(p: argparse.ArgumentParser) -> None:
    """How an NER model's tags become entities (`train.predict.DecodeConfig`); predict and bench ner."""
    from medsynth.train.predict import DEFAULT_MIN_CONFIDENCE
    p.add_argument("--min-confidence", type=float, default=None, metavar="P",
                   help="NER: drop predicted entities whose mean inside-probability is below P (0-1; default "
                        f"{DEFAULT_MIN_CONFIDENCE}, chosen on devel; 0 keeps every entity)")
    p.add_argument("--no-span-rules", action="store_true",
                   help="NER: do not apply the training task's span rules to predicted spans")


def decode_config(args: argparse.Namespace):
    """--min-confidence / --no-span-rules as a DecodeConfig; a value outside 0-1 is one error."""
    from medsynth.train.predict import DecodeConfig

    value = getattr(args, "min_confidence", None)
    if value is not None and not 0.0 <= value <= 1.0:
        raise UsageError("must lie between 0 and 1", field="--min-confidence", value=value)
    given = {} if value is None else {"min_confidence": value}
    return DecodeConfig(**given, span_rules=not getattr(args, "no_span_rules", False))


def cmd_predict(args: argparse.Namespace) -> int:
    from medsynth.train.predict import NERPredictor

    texts = list(args.text)
    if args.file:
        try:
            texts += [line for line in Path(args.file).read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError as err:
            line = err.object.count(b"\n", 0, err.start) + 1
            raise MedsynthError(f"not UTF-8 text (byte {err.start})", where=f"{args.file}:{line}",
                                value=err.object[err.start : err.end]) from None
        except OSError as err:
            raise MedsynthError(f"cannot read input ({err.strerror or err.__class__.__name__})",
                                where=args.file) from None
    if not texts:
        raise UsageError("give TEXT arguments or --file FILE")
    from medsynth.train.spacy_ner import SpacyPredictor, is_spacy_model

    model_dir = Path(args.model)
    if is_spacy_model(model_dir):
        predictor = SpacyPredictor(model_dir)
    else:
        predictor = NERPredictor(model_dir, device=args.device, decode=decode_config(args))
    for text, ents in zip(texts, predictor.predict(texts)):
        print(json.dumps({"text": text, "entities": [e.model_dump() for e in ents]}, ensure_ascii=False))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from medsynth.cli.bench import bench_command

    return bench_command(args, lambda out: _session(args, log_dir=out))


def cmd_export(args: argparse.Namespace) -> int:
    from medsynth.generate.build import BuildConfig, export_existing
    from medsynth.spec import get_task
    from medsynth.data.store import RunStore

    from medsynth.data.store import check_out_dir

    src = Path(args.run)
    if not (src / "store.sqlite").is_file():
        raise MedsynthError("not a medsynth run (no store.sqlite)", where=str(src))
    check_out_dir(Path(args.out), force=args.force)
    with RunStore(src, lock=False) as store:
        ident = store.identity()
    if not ident.get("task"):
        raise MedsynthError("the run store holds no run (empty, or not made by `medsynth build`)",
                            where=str(src / "store.sqlite"))
    task = get_task(str(ident.get("task", "")), args.task_file)  # the exact version that built the run
    from medsynth.generate.conventions import with_conventions

    task = with_conventions(task, ident.get("span_conventions"))  # derived from the run's --reference
    cfg = BuildConfig(task=task, n=args.n, out=Path(args.out), seed=ident.get("seed", DEFAULT_SEED),
                      format=ident.get("format", "json"), progress=False, curate=_curate_config(args, task))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    stats = export_existing(cfg, source=src)
    cur = stats["curation"]
    dropped, added = sum(cur["dropped"].values()), sum(cur.get("added", {}).values())
    moved = sum(v for k, v in cur.get("relabelled", {}).items() if k != "examples_changed")
    print(f"exported the first {cur['input']} examples of {src} to {args.out}"
          + (f" ({dropped} dropped by curation)" if dropped else "")
          + (f" ({added} copies added by curation)" if added else "")
          + (f" ({moved} span boundaries moved by the span rules)" if moved else ""))
    return 0


def _add_curate_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("curation (what the exported dataset keeps; the run store keeps everything)")
    g.add_argument("--dedup", action="store_true", help="drop exact and near-duplicate sentences (MinHash)")
    g.add_argument("--dedup-threshold", type=float, default=0.8, help="word 3-shingle Jaccard")
    g.add_argument("--drop-phi", action="store_true", help="drop sentences the privacy screen flags")
    g.add_argument("--reuse-abbreviations", action="store_true",
                   help="add a copy of each sentence that defines an abbreviation, with the abbreviation alone")
    g.add_argument("--apply-span-rules", action="store_true",
                   help="move span boundaries over the words the task's labels declare in span_include/span_exclude")
    g.add_argument("--vary-distractors", type=int, default=0, metavar="K",
                   help="add K copies of each sentence with planned look-alikes, each replaced by another term of "
                        "its distractor group (0-20; default: %(default)s)")
    g.add_argument("--vary-mentions", action="store_true",
                   help="with --vary-distractors: also replace each mention by another lexicon term of its label")


def _curate_config(args: argparse.Namespace, task, check_span_words: bool = True):
    """Curation options; `check_span_words=False` defers the span-rule check until a --reference has added
    its derived conventions to the task."""
    from medsynth.quality.curate import CurateConfig

    if not 0 < args.dedup_threshold <= 1:
        raise UsageError("must be in (0, 1]", field="--dedup-threshold", value=args.dedup_threshold)
    ruled = any(lab.span_include or lab.span_exclude or lab.span_include_after for lab in task.labels)
    if args.apply_span_rules and check_span_words and not ruled:
        raise UsageError(f"task {task.registry_name} declares no span_include, span_include_after or span_exclude "
                         "words on any label", field="--apply-span-rules", value=True)
    if not 0 <= args.vary_distractors <= 20:
        raise UsageError("must be in 0-20", field="--vary-distractors", value=args.vary_distractors)
    if args.vary_mentions and not args.vary_distractors:
        raise UsageError("needs --vary-distractors K", field="--vary-mentions", value=True)
    return CurateConfig(dedup=args.dedup, dedup_threshold=args.dedup_threshold, drop_phi=args.drop_phi,
                        reuse_abbreviations=args.reuse_abbreviations, span_rules=args.apply_span_rules,
                        vary_distractors=args.vary_distractors, vary_mentions=args.vary_mentions)


def build_parser() -> argparse.ArgumentParser:
    from medsynth import __version__

    parser = _Parser(prog="medsynth", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"medsynth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("tasks", help="list task plugins and their labels").set_defaults(func=cmd_tasks)

    b = sub.add_parser("build", help="generate a labelled synthetic dataset")
    b.add_argument("kind", choices=["ner", "re", "chat"], help="what to build (chat: Baize self-chat dialogues)")
    b.add_argument("--task", dest="task_name", default=None, help="task name (default: the kind's default task)")
    b.add_argument("--task-file", default=None, help="your own task file (YAML/JSON)")
    b.add_argument("--n", type=_positive_int, default=None,
                   help="examples to keep (default 200); with --annotate: the first N texts (default all)")
    b.add_argument("--out", default=None, help="output directory (default runs/ner, runs/re or runs/chat)")
    b.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seeds the plans and the LLM's sampling")
    b.add_argument("--format", choices=["json", "inline"], default="json", help="LLM output format")
    b.add_argument("--seeds", default=None, help="chat: seed questions, one per line (default: LLM-proposed topics)")
    b.add_argument("--max-turns", type=_positive_int, default=6, help="chat: user questions per dialogue")
    b.add_argument("--annotate", default=None, metavar="FILE",
                   help="ner: label your own texts (one per line, or .jsonl with \"text\") instead of generating")
    b.add_argument("--votes", type=int, default=1, metavar="K",
                   help="with --annotate: label each text K times (1 greedy + K-1 sampled) and keep the spans a "
                        "majority returns; the vote agreement becomes the example's weight (self-consistency; "
                        "K times the LLM calls)")
    b.add_argument("--reference", default=None, metavar="FILE",
                   help="match a real corpus's sentence lengths, mentions per sentence and label mix (statistics "
                        "only): a corpus name (train split unless NAME:SPLIT), IOB .tsv/.conll, .jsonl or .txt")
    b.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="what runs the slots: local (this process, async) or ray (a Ray Data pipeline on the Ray "
                        "instance at RAY_ADDRESS, else a local one; needs medsynth[ray]; not with --annotate or chat)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--force", action="store_true",
                   help="write into an existing --out folder that is not a medsynth run (its exports are replaced)")
    _add_curate_options(b)
    _add_llm_options(b)
    b.set_defaults(func=cmd_build)

    ex = sub.add_parser("export", help="export the first N examples of a run (e.g. learning-curve subsets)")
    ex.add_argument("--run", required=True, help="a build output directory")
    ex.add_argument("--n", type=_positive_int, required=True, help="how many examples, in build order")
    ex.add_argument("--out", required=True, help="output directory for the exported subset")
    ex.add_argument("--task-file", default=None, help="the task file, if the run used --task-file")
    ex.add_argument("--force", action="store_true",
                    help="write into an existing --out folder that is not a medsynth run (its exports are replaced)")
    _add_curate_options(ex)
    ex.set_defaults(func=cmd_export)

    t = sub.add_parser("train", help="fine-tune a small model on a built dataset")
    t.add_argument("--data", required=True, action="append",
                   help="PATH[:weight=W], repeatable: a build output (hf/; pairs.jsonl for --kind re) or a gold corpus "
                        "(any file, folder or preset `bench --dataset` takes: its train split, or the whole file); "
                        "several are combined, each example weighted by W (default 1)")
    t.add_argument("--label-map", default=None,
                   help="CORPUS=TASK label pairs renaming a gold --data corpus's labels, e.g. DISEASE=Disease")
    t.add_argument("--out", default="models/ner", help="model folder (--kind re: models/re unless given)")
    t.add_argument("--kind", dest="task_kind", default="ner", choices=["ner", "re"],
                   help="ner: entity tagger; re: relation classifier over entity pairs")
    t.add_argument("--task", dest="task_kind", choices=["ner", "re"], action=_DeprecatedAlias,
                   default=argparse.SUPPRESS, help="deprecated spelling of --kind")
    t.add_argument("--backend", choices=["transformers", "spacy"], default="transformers",
                   help="transformers (fine-tune an encoder) or spacy (tok2vec+ner from the DocBins)")
    t.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seeds initialisation and batch order")
    _add_weighting_options(t)
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_train_options(t)
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser("predict", help="tag text with a trained model; prints JSON lines with character spans")
    pr.add_argument("--model", required=True, help="a model directory written by `train`")
    pr.add_argument("--file", default=None, help="one text per line (default: the TEXT arguments only)")
    pr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto: CUDA when torch sees a GPU (spaCy models run on the CPU)")
    pr.add_argument("text", nargs="*", help="texts to tag")
    _add_decode_options(pr)
    pr.set_defaults(func=cmd_predict)

    be = sub.add_parser("bench", help="score zero-shot LLM vs small models on a real test split")
    be.add_argument("kind", choices=["ner", "re"], help="ner: entity F1; re: relation F1 over entity pairs")
    be.add_argument("--dataset", required=True,
                    help="a preset (ner: ncbi-disease, bc5cdr-chem, bc5cdr-disease, bc5cdr, chemprot-gene; re: gad, "
                         "chemprot, bc5cdr-cid) or a path to your own corpus (a file is its test split; a folder "
                         "with train/devel/test; see docs/corpora.md)")
    be.add_argument("--split", choices=["test", "devel"], default="test",
                    help="the split to score: choose recipes on devel, score test once per final recipe")
    be.add_argument("--folds", default=None, help="re on gad: comma-separated CV folds to run (default: all 10)")
    be.add_argument("--systems", default=None,
                    help="comma-separated: zero-shot, synthetic (needs --train-data), supervised (default: all "
                         "three; with --model: only the model folders)")
    be.add_argument("--model", dest="models", action=_BenchModel, default=[], metavar="NAME=DIR",
                    help="score a model folder that `train` wrote as system NAME, training nothing (repeatable; "
                         "e.g. synthetic=models/ncbi)")
    be.add_argument("--task", dest="task_name", default=None,
                    help="task whose labels are predicted (default: ner; re: the dataset's task)")
    be.add_argument("--task-file", default=None, help="your own task file (YAML/JSON) instead of --task")
    be.add_argument("--train-data", action="append", default=[], help="medsynth dataset(s) for `synthetic` (repeatable)")
    be.add_argument("--name-by-data", action="store_true",
                    help="call a single --train-data system synthetic-<folder> too (adding a learning-curve point)")
    be.add_argument("--label-map", default=None,
                    help="CORPUS=TASK label pairs, e.g. GENE-Y=Gene,GENE-N=Gene,Species=O (ner also reads the older "
                         "TASK=CORPUS, e.g. Drug=Chemical; default: by name)")
    be.add_argument("--data-dir", default=None, help="benchmark data folder (default: ../shared/data)")
    be.add_argument("--limit", type=_positive_int, default=None,
                    help="a fixed seeded sample of N test sentences (default: the whole test split)")
    be.add_argument("--shots", type=int, default=0, help="k-shot LLM baseline with examples from --train-data")
    be.add_argument("--out", default=None, help="results folder (default: benchmarks/results/KIND-DATASET)")
    be.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seeds the test sample and the small models")
    _add_weighting_options(be)
    _add_decode_options(be)
    be.add_argument("--retrain", action="store_true", help="train again even if a model is saved")
    be.add_argument("--report-only", action="store_true", help="recompute tables from stored predictions")
    be.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_llm_options(be, model_alias=False)  # bench's --model is NAME=DIR; a bare NAME is still the old LLM alias
    from medsynth.train.fit import BENCH_RECIPE

    _add_train_options(be, "small models (defaults: TrainConfig, REConfig; bench keeps the committed results' "
                           f"recipe: {', '.join(f'{k} {v}' for k, v in BENCH_RECIPE.items())} unless given)")
    be.set_defaults(func=cmd_bench)

    from medsynth.cli.quality import add_commands as add_quality_commands  # judge, report

    add_quality_commands(sub)

    from medsynth.cli.distill import add_command as add_distill_command  # distill ner (self-distillation)

    add_distill_command(sub)

    from medsynth.cli.cache import add_command as add_cache_command  # cache [--clear]

    add_cache_command(sub)

    from medsynth.cli.recipe import add_command as add_recipe_command  # recipe ner (which route, which commands)

    add_recipe_command(sub)
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same path as Ctrl-C: cleanup runs, finished work is kept


def main(argv: list[str] | None = None) -> int:
    import signal

    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (e.g. called from a worker): leave signals alone
        pass
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except MedsynthError as err:
        print(f"medsynth: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("medsynth: interrupted; finished work (examples, recorded answers) is kept — run the same command "
              "again to resume", file=sys.stderr)
        return 130
