"""The relation-extraction half of `train` (`--task re`), kept out of main.py so the NER command stays as it was:
main.py only dispatches here. `bench re` is the one bench command in `medsynth.cli.bench`; it borrows
`re_config` and `_ner_only_weighting` from here."""

from __future__ import annotations

import argparse
from pathlib import Path

from medsynth.errors import UsageError


def re_config(args: argparse.Namespace, **defaults: object):
    """REConfig from the shared small-model options; unset options keep REConfig's relation defaults, or
    `defaults` where given."""
    from medsynth.train.rel import REConfig

    fields = {"model": args.encoder, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
              "max_length": args.max_length, "patience": args.patience, "seed": args.seed, "device": args.device,
              "max_steps": args.max_steps, "marker": getattr(args, "marker", None), "min_steps": args.min_steps,
              "min_validation": args.min_validation}
    return REConfig(**{**defaults, **{k: v for k, v in fields.items() if v is not None}})


def _ner_only_weighting(args: argparse.Namespace) -> None:
    if args.min_score is not None or args.use_weights:
        raise UsageError("--min-score and --use-weights apply to NER training only")


def train_command(args: argparse.Namespace) -> int:
    from medsynth.data.corpora import parse_label_map
    from medsynth.train.sources import train_from_sources

    if args.backend != "transformers":
        raise UsageError("--kind re trains with the transformers backend only", field="--backend", value=args.backend)
    _ner_only_weighting(args)
    out = Path(args.out if args.out != "models/ner" else "models/re")
    metrics = train_from_sources(args.data, out, re_config(args), "re", not args.no_progress,
                                 parse_label_map(args.label_map))
    if metrics["val_f1"] is None:
        print(f"saved relation model to {out} ({metrics['epochs_run']} epochs; no validation)")
    else:
        print(f"saved relation model to {out} (validation F1 {100 * metrics['val_f1']:.1f}, "
              f"macro F1 {100 * metrics['val_macro_f1']:.1f})")
    return 0
