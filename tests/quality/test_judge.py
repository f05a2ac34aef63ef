"""LLM-as-judge through the loopback LLM double (and, marked `llm`, once on the real tiny local model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medsynth.errors import MedsynthError
from medsynth.llm.client import LLMClient, LLMConfig
from medsynth.quality.judge import (JUDGE_FILE, JUDGE_SCHEMA, judge_messages, judge_run, load_scores,
                                    parse_judgement, prompt_hash, weights_from_scores)
from medsynth.spec import get_task
from medsynth.records import Entity, Example
from tests.helpers import fresh_endpoint_modes  # noqa: F401 (autouse fixture)
from tests.llm_double import LLMDouble, Raw, completion_body

ROOT = Path(__file__).resolve().parents[2]


def make_run(root: Path, texts: list[str], task: str = "ner.v1") -> Path:
    run = root / "run"
    run.mkdir()
    rows = []
    for i, text in enumerate(texts):
        word = text.split()[0]
        rows.append(Example(id=f"ex{i}", text=text,
                            entities=[Entity(start=0, end=len(word), label="Chemical", text=word)]).model_dump_json())
    (run / "data.jsonl").write_text("\n".join(rows) + "\n")
    (run / "stats.json").write_text(json.dumps({"task": task}))
    return run


# The double answers by what the sentence says, so request order does not matter.
ANSWERS = {
    "VALID": {"score": 4, "reason": "one borderline span"},
    "RANGE": {"score": 9, "reason": "too high"},
    "FLOAT": {"score": 3.5, "reason": "half"},
    "PROSE": "I think this annotation is pretty good overall.",
    "BROKEN": '{"score": 5, "reason": ',
    "NONE": None,
}


def responder(request: dict):
    user = request["messages"][-1]["content"]
    for key, answer in ANSWERS.items():
        if f"Sentence: {key}" in user:
            if answer is None:  # a 200 whose message has no content at all
                body = completion_body(request, "x")
                body["choices"][0]["message"]["content"] = None
                return Raw(body)
            return answer
    raise AssertionError(f"unexpected request {user!r}")


def client_for(double: LLMDouble) -> LLMClient:
    return LLMClient(LLMConfig(base_url=double.base_url, model="judge-model", backoff_base=0.01, timeout=5.0,
                               max_retries=0))


def test_parse_judgement_survives_everything():
    assert parse_judgement('{"score": 5, "reason": "ok"}') == (5, "ok", None)
    assert parse_judgement('```json\n{"score": 2.0, "reason": "r"}\n```') == (2, "r", None)
    assert parse_judgement(None)[2] == "no_response"
    assert parse_judgement("")[2] == "empty_response"
    assert parse_judgement("fine")[2] == "no_json_object"
    assert parse_judgement('{"score": 5,')[2] in ("no_json_object", "invalid_json")
    assert parse_judgement('{"score": 0, "reason": "r"}')[2] == "score_out_of_range"
    assert parse_judgement('{"score": 6}')[2] == "score_out_of_range"
    assert parse_judgement('{"score": 2.5}')[2] == "non_integer_score"
    assert parse_judgement('{"score": "4"}')[2] == "non_integer_score"
    assert parse_judgement('{"score": true}')[2] == "non_integer_score"
    assert parse_judgement('{"reason": "r"}')[2] == "missing_score"
    assert parse_judgement('{"score": 3, "reason": "' + "x" * 1000 + '"}')[1] == "x" * 300


def test_judge_prompt_carries_guidelines_and_schema_is_an_enum():
    task = get_task("ner")
    ex = Example(id="a", text="Cisplatin causes nephrotoxicity.",
                 entities=[Entity(start=0, end=9, label="Chemical", text="Cisplatin")])
    system, user = judge_messages(task, ex)
    assert all(lab.name in system["content"] for lab in task.labels)
    assert task.guidelines[0].strip()[:30] in system["content"]
    assert '"Cisplatin"' in user["content"] and "Sentence: Cisplatin causes" in user["content"]
    assert "empty annotation scores 5" in system["content"]  # negatives are valid examples, not misses
    assert JUDGE_SCHEMA["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]
    assert prompt_hash(task) == prompt_hash(get_task("ner")) != prompt_hash(get_task("ncbi-disease"))


def test_judge_scores_persists_and_never_asks_twice(tmp_path):
    run = make_run(tmp_path, ["VALID one.", "RANGE two.", "FLOAT three.", "PROSE four.", "BROKEN five."])
    task = get_task("ner")
    with LLMDouble(responder) as double:
        s = judge_run(run, client_for(double), task, progress=False)
        assert double.errors == []
        assert double.chat_calls == 5
        first = double.requests[0]
        assert first["temperature"] == 0 and first["seed"] == 0
        assert s["examples"] == 5 and s["scored"] == 1 and s["unparsable"] == 4
        assert s["score_histogram"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0} and s["mean"] == 4.0
        assert s["counters"]["judge:unparsable"] == 4
        assert s["counters"]["judge:unparsable:score_out_of_range"] == 1
        assert s["counters"]["judge:unparsable:non_integer_score"] == 1
        assert s["tokens"]["this_run"]["completion"] > 0 and s["judged_now"] == 5
        # Second run: everything from judge.sqlite, not one request, same summary.
        s2 = judge_run(run, client_for(double), task, progress=False)
        assert double.chat_calls == 5 and s2["llm_calls"] == 0 and s2["judged_now"] == 0 and s2["from_store"] == 5
        assert {k: s2[k] for k in ("score_histogram", "mean", "unparsable", "counters")} == \
               {k: s[k] for k in ("score_histogram", "mean", "unparsable", "counters")}
        assert s2["tokens"]["total"] == s["tokens"]["total"]
        # Another judge model is a new key: it judges again, next to the first judge's scores.
        other = LLMClient(LLMConfig(base_url=double.base_url, model="other-judge", backoff_base=0.01, max_retries=0))
        judge_run(run, other, task, progress=False)
        assert double.chat_calls == 10
    assert (run / JUDGE_FILE).exists()
    assert load_scores(run, model="judge-model") == {"ex0": 4}
    quality = json.loads((run / "quality.json").read_text())
    assert quality["judge"]["model"] == "other-judge"


def test_no_answer_is_unparsable_not_stored_and_retried_next_time(tmp_path):
    run = make_run(tmp_path, ["NONE here.", "VALID here."])
    (run / "quality.json").write_text(json.dumps({"other": {"kept": True}}))
    with LLMDouble(responder) as double:
        s = judge_run(run, client_for(double), get_task("ner"), progress=False)
        assert s["unparsable"] == 1 and s["counters"]["judge:unparsable:no_response"] == 1 and s["scored"] == 1
        judge_run(run, client_for(double), get_task("ner"), progress=False)
        assert double.chat_calls == 3  # only the unanswered example was asked again
    assert json.loads((run / "quality.json").read_text())["other"] == {"kept": True}  # other keys kept


def test_weights_from_scores():
    scores = {"a": 5, "b": 3, "c": 1}
    assert weights_from_scores(scores) == {"a": 1.0, "b": 1.0, "c": 0.0}
    assert weights_from_scores(scores, threshold=4) == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert weights_from_scores(scores, mode="weight") == {"a": 1.0, "b": 0.6, "c": 0.2}
    assert weights_from_scores(scores, ids=["a", "z"]) == {"a": 1.0, "z": 1.0}
    assert weights_from_scores(scores, ids=["z"], missing=0.0) == {"z": 0.0}
    with pytest.raises(MedsynthError):
        weights_from_scores(scores, mode="squared")
    assert load_scores(Path("/nonexistent-run")) == {}


def test_judge_cli_prints_one_line_and_defaults_to_the_runs_task(tmp_path, capsys):
    from medsynth.cli.main import main

    run = make_run(tmp_path, ["VALID one.", "VALID two."], task="ner.v1")
    with LLMDouble(responder) as double:
        rc = main(["judge", str(run), "--base-url", double.base_url, "--llm-model", "judge-model", "--no-cache",
                   "--no-progress"])
    out = capsys.readouterr().out.strip()
    assert rc == 0 and out.count("\n") == 0 and "judged 2 examples" in out and "mean 4.00" in out
    assert "Chemical" in double.requests[0]["messages"][0]["content"]
    assert main(["judge", str(tmp_path / "nope"), "--base-url", "http://127.0.0.1:9/v1", "--llm-model", "m"]) == 2
    assert "run directory not found" in capsys.readouterr().err


def test_judge_n_scores_only_the_first_examples(tmp_path, capsys):
    from medsynth.cli.main import main

    run = make_run(tmp_path, ["VALID one.", "VALID two.", "RANGE three."])
    with LLMDouble(responder) as double:
        s = judge_run(run, client_for(double), get_task("ner"), progress=False, limit=2)
        assert s["examples"] == 2 and double.chat_calls == 2 and load_scores(run) == {"ex0": 4, "ex1": 4}
        rc = main(["judge", str(run), "--n", "3", "--base-url", double.base_url, "--llm-model", "judge-model",
                   "--no-cache", "--no-progress"])
        assert rc == 0 and double.chat_calls == 3  # the first two come from judge.sqlite
    assert "judged 3 examples" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["judge", str(run), "--n", "0", "--base-url", "http://127.0.0.1:9/v1"])
    assert "--n: must be at least 1, got 0" in capsys.readouterr().err


@pytest.mark.llm
@pytest.mark.skipif(__import__("importlib").util.find_spec("llama_cpp") is None,
                    reason="llama-cpp-python is not installed (make setup)")
def test_judge_on_the_real_tiny_local_llm(tmp_path):
    """Plumbing only: 3 examples judged by SmolLM2-135M; every one parses or is counted unparsable."""
    run = make_run(tmp_path, ["Cisplatin caused acute kidney injury in two patients.",
                              "Metformin was stopped because of lactic acidosis.",
                              "Warfarin overdose led to intracranial bleeding."])
    env = {**os.environ, "MEDSYNTH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "medsynth", "judge", str(run), "--llm", "tiny", "--no-progress",
                          "--threads", "1"], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    s = json.loads((run / "quality.json").read_text())["judge"]
    assert s["examples"] == 3 and s["scored"] + s["unparsable"] == 3
    assert set(load_scores(run).values()) <= {1, 2, 3, 4, 5}
