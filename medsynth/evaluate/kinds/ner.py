"""The NER benchmark kind: IOB2 test sentences, strict entity F1, one small token-classification model.

The corpus is a preset or the user's own (`kinds.source.open_corpus`); its labels are renamed to task labels
(`--label-map CORPUS=TASK`) and task labels mapped onto the corpus's (`label_mapping`); a task label the corpus
does not annotate is dropped before scoring. The zero-shot system may be a k-shot one (`--shots k`, demonstrations from
generated data only). The report adds where each system's errors come from (`medsynth.evaluate.diagnose`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from medsynth.data.corpora import Corpus
from medsynth.data.corpora import ner as corpora
from medsynth.data.tokens import detokenize
from medsynth.errors import MedsynthError
from medsynth.evaluate import scores
from medsynth.evaluate.kinds import ModelPlan, Predicted, SmallSystem, TestSet, Unit
from medsynth.evaluate.kinds.source import dataset_slug, open_corpus, validation_split
from medsynth.paths import portable
from medsynth.records import Example
from medsynth.train.ner import TrainConfig

if TYPE_CHECKING:
    from medsynth.evaluate.bench import BenchConfig
    from medsynth.llm.client import LLMClient
    from medsynth.llm.journal import AnswerJournal


def weighting_suffix(train: TrainConfig) -> str:
    """How judge scores were used, as a name suffix: `-min4` (hard threshold), `-weighted` (soft weights).
    Part of the system (and model folder) name, so one judged dataset can be benchmarked all three ways."""
    suffix = f"-min{train.min_score:g}" if train.min_score is not None else ""
    return suffix + ("-weighted" if train.use_weights else "")


def unweighted(cfg: BenchConfig) -> BenchConfig:
    """The config for the supervised upper bound: judge-score options concern generated data only."""
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"min_score": None, "use_weights": False})})


def model_mapping(model_labels: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Corpus label for each label a saved model predicts, read from the model's own label map: task labels
    go through the task → corpus mapping, labels that already are corpus labels (a model trained on the
    corpus, or a task whose names match) stay as they are, anything else is dropped."""
    corpus = set(mapping.values())
    return {lab: mapping.get(lab, lab) for lab in model_labels if lab in mapping or lab in corpus}


def shots_from(train_data: list[Path], k: int, seed: int) -> list[Example]:
    """k-shot demonstrations come from generated data only, never from the benchmark."""
    if not k:
        return []
    if not train_data:
        raise MedsynthError("--shots needs --train-data (a medsynth dataset) to draw examples from", field="--shots", value=k)
    path = train_data[0] / "data.jsonl"
    exs = [Example.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with_ents = [e for e in exs if e.entities]
    return corpora.sample(with_ents, k, seed)


def _examples_from_iob(sentences: list[corpora.IOBSentence], name: str) -> list[Example]:
    from medsynth.data.tokens import bio_to_spans

    out = []
    for i, s in enumerate(sentences):
        text, toks = detokenize(s.tokens)
        out.append(Example(id=f"{name}-{i:06d}", text=text, entities=bio_to_spans(toks, s.tags, text)))
    return out


def supervised_data(cfg: BenchConfig, work: Path, corpus: Corpus) -> Path:
    """The corpus train split (+ devel as validation, unless devel is the split scored) in the hf/ layout `build`
    writes. A preset scored on test keeps its old folder name, so earlier results' models are still reused."""
    from medsynth.data.export import write_hf

    validation = validation_split(cfg, corpus)
    name = dataset_slug(cfg.dataset, "ner") + ("" if validation else "-no-devel")
    target = work / f"supervised-data-{name}"
    if not (target / "hf").exists():
        from medsynth.train.fit import hold_out_validation

        train = corpus.split("train")
        if validation:
            fit, val = _examples_from_iob(train, "train"), _examples_from_iob(corpus.split(validation), "devel")
        else:  # a seeded 10% of train, as the trainer itself would hold out
            fit, val, _ = hold_out_validation(_examples_from_iob(train, "train"), cfg.train.seed, "sentences",
                                              cfg.dataset)
        target.mkdir(parents=True, exist_ok=True)
        write_hf({"train": fit, "validation": val}, corpora.corpus_labels(train), target / "hf")
    return target


def _fmt_ci(ci: tuple[float, float] | list[float]) -> str:
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}"


class NERKind:
    name = "ner"
    rate_key = "sentences_per_second"
    saved = "config.json"
    reads = "hf"
    default_title = "benchmark"
    plot_ylabel = "strict entity F1 (%)"

    def default_train(self) -> TrainConfig:
        from medsynth.train.fit import BENCH_RECIPE

        return TrainConfig(**BENCH_RECIPE)  # the recipe the committed results were trained with

    def check(self, cfg: BenchConfig) -> None:
        if cfg.folds:
            raise MedsynthError("--folds applies to bench re on gad only", field="--folds", value=cfg.folds)

    def check_train_data(self, cfg: BenchConfig) -> None:
        if not cfg.train_data:
            raise MedsynthError("the synthetic system needs --train-data DIR (a medsynth build output)",
                                field="--train-data")
        for data in cfg.train_data:
            if not (Path(data) / "hf").exists():
                raise MedsynthError("not a medsynth dataset (no hf/ folder); run `medsynth build` first",
                                    where=str(data))

    def name_suffix(self, cfg: BenchConfig) -> str:
        return weighting_suffix(cfg.train)

    def load_test(self, cfg: BenchConfig) -> TestSet:
        """The scored split (`cfg.split`) of the corpus, label-mapped; what was scored goes into every meta."""
        corpus, to_corpus = open_corpus(cfg, cfg.task.label_names)
        test_all = corpus.split(cfg.split)
        mapping = corpora.label_mapping(cfg.task.label_names, corpora.corpus_labels(test_all), to_corpus)
        meta = {"task": cfg.task.registry_name, "split": cfg.split, "test_corpus": corpus.describe(cfg.split),
                "limit": cfg.limit}
        return TestSet(units=[(None, corpora.sample(test_all, cfg.limit, cfg.seed))], mapping=mapping, meta=meta,
                       corpus=corpus)

    def zero_shot(self, client: LLMClient, cfg: BenchConfig, test: TestSet, name: str,
                  journal: AnswerJournal) -> tuple[list[dict], dict]:
        from medsynth.evaluate.zeroshot import predict_zero_shot

        sentences = test.units[0][1]
        items = [detokenize(s.tokens) for s in sentences]
        shots = shots_from(cfg.train_data, cfg.shots, cfg.seed)
        tags, info = predict_zero_shot(client, cfg.task, items, shots, progress=cfg.progress, journal=journal)
        mapped = [corpora.map_tags(t, test.mapping) for t in tags]
        info["meta"] = {"shots": cfg.shots, "n_sentences": len(sentences)}
        return scores.predictions_record(sentences, mapped, name), info

    def train(self, data_dir: Path, model_dir: Path, config: TrainConfig, progress: bool) -> dict:
        from medsynth.train.ner import train_ner

        return train_ner(data_dir, model_dir, config, progress=progress)

    def supervised(self, cfg: BenchConfig, test: TestSet) -> SmallSystem:
        data = supervised_data(cfg, cfg.out / "work", test.corpus)
        return SmallSystem([ModelPlan(data, cfg.out / "models" / "supervised", test.units)], str(data), unweighted(cfg))

    def predict(self, model_dir: Path, units: list[Unit], name: str, cfg: BenchConfig, test: TestSet) -> Predicted:
        import time

        from medsynth.train.predict import NERPredictor

        sentences = units[0][1]
        predictor = NERPredictor(model_dir, device=cfg.train.device, decode=cfg.decode)
        t0 = time.monotonic()
        tags = predictor.predict_tokens([s.tokens for s in sentences])
        seconds = time.monotonic() - t0
        model_labels = sorted({t[2:] for t in predictor.id2label.values() if t != "O"})
        mapped = [corpora.map_tags(t, model_mapping(model_labels, test.mapping)) for t in tags]
        return Predicted(scores.predictions_record(sentences, mapped, name), seconds,
                         {"model_labels": model_labels, "device": predictor.device,
                          "decode": predictor.decode_record()})

    def model_meta(self, cfg: BenchConfig, model_dirs: list[Path], n: int) -> dict:
        return {"model_dir": portable(model_dirs[0]), "min_score": cfg.train.min_score, "use_weights": cfg.train.use_weights}

    # -- report ----------------------------------------------------------------------------------------------

    def score(self, path: Path) -> tuple[dict, list[dict]]:
        rows = scores.read_records(path)
        return scores.scores_from_records(rows), rows

    def after_report(self, out: Path, rows: dict[str, list[dict]], order: list[str], title: str) -> dict:
        from medsynth.evaluate import diagnose

        return diagnose.write_error_report(out, rows, order, title)

    def write_csv(self, path: Path, results: dict, order: list[str]) -> None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["system", "type", "precision", "recall", "f1", "f1_lo", "f1_hi", "support", "sentences",
                        "sentences_per_second", "llm_tokens"])
            for name in order:
                r = results[name]
                m = r["meta"]
                ci = r["ci"]["f1"]
                w.writerow([name, "ALL", *(round(r["overall"][k], 4) for k in ("precision", "recall", "f1")),
                            round(ci[0], 4), round(ci[1], 4), r["overall"]["support"], r["n_sentences"],
                            m.get("sentences_per_second"), m.get("llm_tokens")])
                for typ, s in sorted(r["per_type"].items()):
                    w.writerow([name, typ, *(round(s[k], 4) for k in ("precision", "recall", "f1")), "", "",
                                s["support"], r["n_sentences"], "", ""])

    def table(self, results: dict, order: list[str], title: str) -> str:
        lines = [f"### {title}", "",
                 "| system | P | R | F1 | F1 95% CI | sentences | sent/s | LLM tokens |",
                 "|---|---|---|---|---|---|---|---|"]
        for name in order:
            r = results[name]
            o, m = r["overall"], r["meta"]
            lines.append(f"| {name} | {100 * o['precision']:.1f} | {100 * o['recall']:.1f} | {100 * o['f1']:.1f} | "
                         f"{_fmt_ci(r['ci']['f1'])} | {r['n_sentences']} | {m.get('sentences_per_second') or ''} | "
                         f"{m.get('llm_tokens', '')} |")
        return ("\n".join(lines) + "\n\nStrict entity-level scores (seqeval, IOB2); 95% CI from 1000 sentence "
                "bootstrap resamples.\n")
