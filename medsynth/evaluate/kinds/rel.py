"""The relation-extraction benchmark kind: candidate pairs, micro F1 over the relation labels, a pair classifier.

Test pairs come from `read_corpus` (a preset, see `medsynth.data.corpora.rel` for how each dataset's pairs are
formed, or the user's BRAT / data.jsonl / pairs.jsonl corpus; `kinds.source`). GAD
follows the BioBERT 10-fold protocol: every requested fold's test split is one unit, scored separately (rows carry
their `fold`), and the report gives the mean ± sd of the per-fold scores next to the pooled score; `--folds` picks
a subset because each fold means another supervised training run. ChemProt and BC5CDR-CID use their official test
split; their supervised model trains on train with devel as validation. The synthetic model is trained once and
applied to every fold; the supervised one is trained per fold.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from medsynth.data.corpora import Corpus
from medsynth.data.corpora import ner as corpora
from medsynth.data.corpora import rel as corpora_re
from medsynth.errors import MedsynthError
from medsynth.evaluate import scores
from medsynth.evaluate.kinds import ModelPlan, Predicted, SmallSystem, TestSet, Unit
from medsynth.evaluate.kinds.source import dataset_slug, is_preset, open_corpus, validation_split
from medsynth.paths import portable
from medsynth.records import NO_RELATION
from medsynth.spec import TaskSpec
from medsynth.train.rel import REConfig

if TYPE_CHECKING:
    from medsynth.evaluate.bench import BenchConfig
    from medsynth.llm.client import LLMClient
    from medsynth.llm.journal import AnswerJournal
    from medsynth.train.ner import TrainConfig

DATASET_RELATIONS = {"gad": ("Association",), "chemprot": corpora_re.CHEMPROT_GROUPS, "bc5cdr-cid": ("CID",)}


def check_task(task: TaskSpec, dataset: str) -> None:
    """The task must be RE and name every relation the corpus annotates (else recall would be capped for a
    reason unrelated to the data). A user's corpus is checked when it is read (`kinds.source.open_corpus`)."""
    if task.kind != "re":
        raise MedsynthError(f"task {task.name!r} is a {task.kind} task; bench re needs a relation task",
                            field="--task", value=task.name)
    if not is_preset(dataset, "re"):
        return
    corpora_re._check_dataset(dataset)
    names = {r.name for r in task.relations}
    missing = [r for r in DATASET_RELATIONS[dataset] if r not in names]
    if missing:
        raise MedsynthError(f"task {task.name!r} lacks relations the {dataset} corpus annotates: {', '.join(missing)} "
                            f"(task relations: {', '.join(sorted(names)) or 'none'})", field="--task")


def folds(cfg: BenchConfig) -> list[int | None]:
    """The GAD folds to run (all 10 unless --folds), or [None] for a corpus with one official test split."""
    if cfg.dataset != "gad" or not is_preset(cfg.dataset, "re"):
        if cfg.folds:
            raise MedsynthError("--folds applies to gad only (10-fold CV)", field="--folds", value=cfg.folds)
        return [None]
    chosen = cfg.folds or list(corpora_re.GAD_FOLDS)
    bad = [k for k in chosen if k not in corpora_re.GAD_FOLDS]
    if bad:
        raise MedsynthError("GAD folds are 1..10", field="--folds", value=bad[0])
    return sorted(set(chosen))


def task_labels(task: TaskSpec) -> list[str]:
    """What a relation corpus's labels must map onto: the task's entity labels and relation names."""
    return [*task.label_names, *(r.name for r in task.relations)]


def corpus_relations(cfg: BenchConfig, corpus: Corpus) -> tuple[str, ...]:
    """The relation labels the corpus annotates (after the label map): a preset's declared ones, else those found
    in its splits."""
    if is_preset(cfg.dataset, "re"):
        mapping = corpus.mapping()
        names = [mapping.get(r, r) for r in DATASET_RELATIONS[cfg.dataset]]
    else:
        names = [p.label for s in corpus.splits for p in corpus.split(s)]
    return tuple(sorted(set(names) - {NO_RELATION, "O"}))


def to_corpus_labels(labels: list[str], relations: tuple[str, ...] | str) -> list[str]:
    """Task relations the corpus never annotates are predicted as 'none' (the corpus's scope, not an error).
    `relations`: the corpus's relation labels, or a preset's name."""
    allowed = set(DATASET_RELATIONS[relations] if isinstance(relations, str) else relations)
    return [lab if lab in allowed else NO_RELATION for lab in labels]


def _fold_suffix(fold: int | None) -> str:
    return f"-fold{fold}" if fold else ""


def supervised_data(cfg: BenchConfig, fold: int | None, corpus: Corpus) -> Path:
    """The corpus train split (+ devel as validation unless devel is scored; without one the trainer holds out
    10% of train) as pairs.jsonl under OUT/work/."""
    validation = validation_split(cfg, corpus)
    suffix = "" if validation or "devel" not in corpus.splits else "-no-devel"
    target = cfg.out / "work" / f"supervised-{dataset_slug(cfg.dataset, 're')}{_fold_suffix(fold)}{suffix}"
    if not (target / "pairs.jsonl").exists():
        pairs = [p.model_copy(update={"split": "train"}) for p in corpus.split("train")]
        if validation:
            pairs += [p.model_copy(update={"split": "validation"}) for p in corpus.split(validation)]
        corpora_re.write_pairs(target / "pairs.jsonl", pairs)
    return target


def _fold_cell(f: dict) -> str:
    """Mean ± sd over folds; a single fold has no spread to report, so it says so instead of "± 0.0"."""
    if len(f["per_fold"]) < 2:
        return f"{100 * f['f1']['mean']:.1f} (1 fold, no sd)"
    return f"{100 * f['f1']['mean']:.1f} ± {100 * f['f1']['sd']:.1f}"


def _speed(meta: dict) -> object:
    return meta.get("pairs_per_second") or ""


def _round(x: float | None) -> object:
    return "" if x is None else round(x, 4)


class REKind:
    name = "re"
    rate_key = "pairs_per_second"
    saved = "label_map.json"
    reads = "pairs.jsonl"
    default_title = "relation benchmark"
    plot_ylabel = "relation F1, positive labels (%)"

    def default_train(self) -> TrainConfig:
        return REConfig(min_validation=1)  # every validation split selects epochs, as in the committed results

    def check(self, cfg: BenchConfig) -> None:
        if cfg.shots:
            raise MedsynthError("--shots is not available for bench re (zero-shot only)", field="--shots",
                                value=cfg.shots)
        check_task(cfg.task, cfg.dataset)

    def check_train_data(self, cfg: BenchConfig) -> None:
        if not cfg.train_data:
            raise MedsynthError("the synthetic system needs --train-data DIR (a `build re` output with pairs.jsonl)",
                                field="--train-data")
        for data in cfg.train_data:
            if not (Path(data) / "pairs.jsonl").is_file():
                raise MedsynthError("not a medsynth RE run (no pairs.jsonl); run `medsynth build re` first",
                                    where=str(data))

    def name_suffix(self, cfg: BenchConfig) -> str:
        return ""

    def load_test(self, cfg: BenchConfig) -> TestSet:
        """Sampled pairs of the scored split per fold; every system's meta records the split, the corpus (spec,
        content hash), the loaders' stats (pairs, gold relations lost to sentence level) and what was sampled."""
        units: list[Unit] = []
        stats, described, corpora_by_fold = {}, {}, {}
        relations: tuple[str, ...] = ()
        for fold in folds(cfg):
            corpus, _ = open_corpus(cfg, task_labels(cfg.task), fold=fold or 1)
            units.append((fold, corpora.sample(corpus.split(cfg.split), cfg.limit, cfg.seed)))
            key = str(fold) if fold else cfg.split
            stats[key], described[key] = corpus.stats(cfg.split), corpus.describe(cfg.split)
            corpora_by_fold[fold] = corpus
            relations = corpus_relations(cfg, corpus)
        meta = {"dataset": cfg.dataset, "task": f"{cfg.task.name}.v{cfg.task.version}",
                "folds": [f for f, _ in units if f is not None], "limit": cfg.limit, "seed": cfg.seed,
                "corpus": stats, "split": cfg.split,
                "test_corpus": described if len(described) > 1 else next(iter(described.values()))}
        return TestSet(units=units, meta=meta, corpus=corpora_by_fold, relations=relations)

    def zero_shot(self, client: LLMClient, cfg: BenchConfig, test: TestSet, name: str,
                  journal: AnswerJournal) -> tuple[list[dict], dict]:
        from medsynth.evaluate.zeroshot import predict_zero_shot_re

        rows: list[dict] = []
        seconds, counters, records, llm = 0.0, {}, [], {}
        for fold, pairs in test.units:
            labels, info = predict_zero_shot_re(client, cfg.task, pairs, progress=cfg.progress, journal=journal)
            rows += scores.re_predictions_record(pairs, to_corpus_labels(labels, test.relations), name, fold=fold)
            seconds += info["seconds"]
            for k, v in info["counters"].items():
                counters[k] = counters.get(k, 0) + v
            records += info["records"]
            llm = info["llm"]  # the client's totals over the session
        invalid = sum(v for k, v in counters.items() if k.startswith("invalid:"))
        return rows, {"counters": counters, "records": records, "seconds": seconds, "llm": llm,
                      "meta": {"pairs": test.size, "invalid_answers": invalid}}

    def train(self, data_dir: Path, model_dir: Path, config: TrainConfig, progress: bool) -> dict:
        from medsynth.train.rel import train_re

        return train_re(data_dir, model_dir, config, progress=progress)  # type: ignore[arg-type]

    def supervised(self, cfg: BenchConfig, test: TestSet) -> SmallSystem:
        plans = [ModelPlan(supervised_data(cfg, fold, test.corpus[fold]),
                           cfg.out / "models" / f"supervised{_fold_suffix(fold)}", [(fold, pairs)])
                 for fold, pairs in test.units]
        return SmallSystem(plans, f"{cfg.dataset} train split", cfg)

    def predict(self, model_dir: Path, units: list[Unit], name: str, cfg: BenchConfig, test: TestSet) -> Predicted:
        import time

        from medsynth.train.predict import pick_device
        from medsynth.train.predict import REPredictor

        predictor = REPredictor(model_dir, device=cfg.train.device)
        rows: list[dict] = []
        seconds = 0.0
        for fold, pairs in units:
            t0 = time.monotonic()
            labels, probs = predictor.predict_with_proba(pairs)
            seconds += time.monotonic() - t0
            rows += scores.re_predictions_record(pairs, to_corpus_labels(labels, test.relations), name, probs, fold)
        return Predicted(rows, seconds, {"device": pick_device(cfg.train.device)})

    def model_meta(self, cfg: BenchConfig, model_dirs: list[Path], n: int) -> dict:
        marker = cfg.train.marker  # type: ignore[union-attr]  # BenchConfig gives bench re an REConfig
        return {"model_dir": [portable(d) for d in model_dirs], "marker": marker, "pairs": n}

    # -- report ----------------------------------------------------------------------------------------------

    def score(self, path: Path) -> tuple[dict, list[dict]]:
        rows = scores.read_re_records(path)
        return scores.scores_from_re_records(rows), rows

    def after_report(self, out: Path, rows: dict[str, list[dict]], order: list[str], title: str) -> None:
        """Nothing beyond the tables: the error kinds of `diagnose` are entity-span kinds."""
        return None

    def write_csv(self, path: Path, results: dict, order: list[str]) -> None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["system", "label", "precision", "recall", "f1", "f1_lo", "f1_hi", "f1_fold_mean",
                        "f1_fold_sd", "support", "pairs", "pairs_per_second", "llm_tokens"])
            for name in order:
                r, m = results[name], results[name]["meta"]
                ci, fold_f1 = r["ci"]["f1"], r.get("folds", {}).get("f1", {})
                w.writerow([name, "ALL", *(round(r["overall"][k], 4) for k in ("precision", "recall", "f1")),
                            round(ci[0], 4), round(ci[1], 4), _round(fold_f1.get("mean")), _round(fold_f1.get("sd")),
                            r["overall"]["support"], r["n_pairs"], _speed(m), m.get("llm_tokens")])
                for lab, s in sorted(r["per_label"].items()):
                    w.writerow([name, lab, *(round(s[k], 4) for k in ("precision", "recall", "f1")), "", "", "", "",
                                s["support"], r["n_pairs"], "", ""])

    def table(self, results: dict, order: list[str], title: str) -> str:
        any_folds = any("folds" in r for r in results.values())
        head = "| system | P | R | F1 | F1 95% CI |" + (" F1 fold mean ± sd | folds |" if any_folds else "")
        head += " macro F1 | pairs | pairs/s | LLM tokens |"
        cols = head.count("|") - 1
        lines = [f"### {title}", "", head, "|" + "---|" * cols]
        for name in order:
            lines.append(self._row(name, results[name], any_folds))
        lines += self._per_label_table(results, order)
        note = ("\n\nMicro P/R/F1 over the relation labels ('none' excluded: binary F1 of the positive class for one "
                "relation, ChemProt's micro-F1 over CPR:3/4/5/6/9); 95% CI from 1000 pair bootstrap resamples of the "
                "pooled pairs" + ("; fold mean ± sd over the GAD folds listed (BioBERT 10-fold protocol)" if any_folds
                                  else "") + ".\n")
        return "\n".join(lines) + note

    @staticmethod
    def _row(name: str, r: dict, any_folds: bool) -> str:
        o, m = r["overall"], r["meta"]
        row = (f"| {name} | {100 * o['precision']:.1f} | {100 * o['recall']:.1f} | {100 * o['f1']:.1f} | "
               f"{100 * r['ci']['f1'][0]:.1f}–{100 * r['ci']['f1'][1]:.1f} |")
        if any_folds:
            f = r.get("folds")
            row += (f" {_fold_cell(f)} | {','.join(f['per_fold'])} |" if f else " | |")
        return row + f" {100 * r['macro_f1']:.1f} | {r['n_pairs']} | {_speed(m)} | {m.get('llm_tokens', '')} |"

    @staticmethod
    def _per_label_table(results: dict, order: list[str]) -> list[str]:
        """A second table of per-label F1 when the corpus has several relation labels (ChemProt)."""
        labels = sorted({lab for r in results.values() for lab in r["per_label"]})
        if len(labels) <= 1:
            return []
        lines = ["", "| system | " + " | ".join(f"{lab} F1" for lab in labels) + " |",
                 "|" + "---|" * (len(labels) + 1)]
        for name in order:
            pl = results[name]["per_label"]
            lines.append(f"| {name} | " + " | ".join(f"{100 * pl[lab]['f1']:.1f}" if lab in pl else "–"
                                                     for lab in labels) + " |")
        return lines
