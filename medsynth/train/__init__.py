"""Small-model training: `fit` (the shared flow), the kind modules `ner` and `rel`, `predict`, `spacy_ner`.

The package itself is callable, `medsynth.train(data, out, config)`, because Python rebinds `medsynth.train`
to this package as soon as any `medsynth.train.*` module is imported; a plain function of that name in
`medsynth/__init__.py` would be replaced by the module. Nothing heavy is imported here.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medsynth.train.fit import TrainConfig


def train(data: str | Path, out: str | Path, config: "TrainConfig | None" = None, *, kind: str | None = None,
          progress: bool = False) -> dict:
    """Fine-tune a small encoder on a built dataset and save it to `out`; returns its metrics.

    The kind follows the config (`REConfig` → relation model) or `kind` ("ner" / "re"); default NER."""
    from medsynth.errors import UsageError
    from medsynth.train.rel import REConfig, train_re

    kind = kind or ("re" if isinstance(config, REConfig) else "ner")
    if kind == "re":
        return train_re(Path(data), Path(out), config if isinstance(config, REConfig) else
                        REConfig(**(config.model_dump(exclude_unset=True) if config else {})), progress)
    if kind != "ner":
        raise UsageError("choose ner or re", field="kind", value=kind)
    from medsynth.train.ner import train_ner

    return train_ner(Path(data), Path(out), config, progress)


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
