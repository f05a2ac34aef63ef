"""What differs between the two benchmark kinds, behind one small interface (`BenchKind`).

`medsynth.evaluate.bench` runs one flow for every kind: check the options, read the test corpus, run each system
(zero-shot LLM, small model trained on synthetic data, the same model trained on the real train split), store
predictions with their `.meta.json`, then recompute every table, CSV and plot from the stored files alone. A kind
supplies only the parts that differ:

- reading the test corpus into units (`load_test`: one unit for NER; one per cross-validation fold for GAD);
- the zero-shot prompt and decoder (`zero_shot`, through `medsynth.evaluate.zeroshot`);
- training and prediction of the small model (`train`, `supervised`, `predict`);
- the metric (`score`: `medsynth.evaluate.scores`) and the table and CSV columns (`table`, `write_csv`).

`NERKind` (`kinds.ner`) scores entities on IOB2 sentences; `REKind` (`kinds.rel`) scores relation labels on
candidate pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from medsynth.evaluate.bench import BenchConfig
    from medsynth.llm.client import LLMClient
    from medsynth.llm.journal import AnswerJournal
    from medsynth.train.ner import TrainConfig

Unit = tuple[int | None, list]  # (cross-validation fold or None, test items: IOB sentences or relation pairs)


@dataclass
class TestSet:
    """The sampled test split, as the systems see it."""

    __test__ = False  # not a pytest test class, despite the name

    units: list[Unit]
    mapping: dict[str, str] = field(default_factory=dict)  # NER: task label -> corpus label
    meta: dict[str, Any] = field(default_factory=dict)  # added to every system's .meta.json (split, corpus, stats)
    corpus: Any = None  # the opened corpus (`data.corpora.Corpus`; RE: {fold: Corpus}), for the supervised system
    relations: tuple[str, ...] = ()  # RE: the relation labels the corpus annotates (others are predicted 'none')

    @property
    def size(self) -> int:
        return sum(len(items) for _, items in self.units)


@dataclass(frozen=True)
class ModelPlan:
    """One small model to train (or reuse) on `data` and apply to `units`."""

    data: Path
    model_dir: Path
    units: list[Unit]


@dataclass
class SmallSystem:
    """The models a small-model system consists of (one, or one per fold), what its meta calls its training data,
    and the config they train with (the supervised upper bound ignores judge-score weighting)."""

    plans: list[ModelPlan]
    train_data: str
    cfg: BenchConfig


@dataclass
class Predicted:
    rows: list[dict]
    seconds: float
    meta: dict[str, Any]  # kind-specific meta of the predictor (device, model labels)


class BenchKind(Protocol):
    name: str  # "ner" | "re", as in `bench KIND`
    rate_key: str  # speed key in .meta.json and the tables: sentences_per_second | pairs_per_second
    saved: str  # the file that marks a saved model folder
    reads: str  # what the trainer reads in a data folder (hf, pairs.jsonl): a newer one makes the model stale
    default_title: str
    plot_ylabel: str

    def default_train(self) -> TrainConfig: ...

    def check(self, cfg: BenchConfig) -> None:
        """Refuse options and task/dataset combinations this kind cannot run, before any work."""

    def check_train_data(self, cfg: BenchConfig) -> None:
        """Every --train-data folder holds what this kind's trainer reads."""

    def name_suffix(self, cfg: BenchConfig) -> str:
        """Appended to a synthetic system's name (NER: how judge scores were used)."""

    def load_test(self, cfg: BenchConfig) -> TestSet: ...

    def zero_shot(self, client: LLMClient, cfg: BenchConfig, test: TestSet, name: str,
                  journal: AnswerJournal) -> tuple[list[dict], dict]:
        """Prediction rows and {counters, records, seconds, llm, meta} for the zero-shot system."""

    def train(self, data_dir: Path, model_dir: Path, config: TrainConfig, progress: bool) -> dict: ...

    def supervised(self, cfg: BenchConfig, test: TestSet) -> SmallSystem: ...

    def predict(self, model_dir: Path, units: list[Unit], name: str, cfg: BenchConfig, test: TestSet) -> Predicted: ...

    def model_meta(self, cfg: BenchConfig, model_dirs: list[Path], n: int) -> dict: ...

    def score(self, path: Path) -> tuple[dict, list[dict]]:
        """Scores of one stored predictions file, and its rows."""

    def after_report(self, out: Path, rows: dict[str, list[dict]], order: list[str], title: str) -> dict | None:
        """Kind-specific reports beyond the tables; returns {system: error kinds} where the kind has them."""

    def write_csv(self, path: Path, results: dict, order: list[str]) -> None: ...

    def table(self, results: dict, order: list[str], title: str) -> str: ...


KINDS = ("ner", "re")


def kind_for(name: str) -> BenchKind:
    """The kind object for `bench KIND`."""
    if name == "ner":
        from medsynth.evaluate.kinds.ner import NERKind

        return NERKind()
    if name == "re":
        from medsynth.evaluate.kinds.rel import REKind

        return REKind()
    from medsynth.errors import MedsynthError

    raise MedsynthError(f"unknown benchmark kind; choose from {', '.join(KINDS)}", field="kind", value=name)
