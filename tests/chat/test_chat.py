"""`build chat` (Baize self-chat): the cleaner on malformed transcripts, topic parsing, seeds files, and a full
build through the loopback LLM double, including resume and cache replay with 0 LLM calls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from medsynth.chat import topics as T
from medsynth.chat.build import AI_SYSTEM, prompt_hash, turn_messages
from medsynth.chat.transcript import (PRIMER, Turn, clean_transcript, clean_turns, continuation, is_end,
                                      looks_cut_off, render, trim_cut_answer, user_voice_problem)
from medsynth.cli.main import main
from medsynth.errors import MedsynthError
from tests.helpers import build_with_double, cache_env, data_rows  # noqa: F401 (cache_env: fixture)
from tests.llm_double import LLMDouble, closed_port

GREETING = render([Turn(s, c) for s, c in PRIMER])


def _t(*lines: str) -> str:
    return GREETING + "\n" + "\n".join(lines)


# ---------------------------------------------------------------------------------------------- cleaner


def test_clean_dialogue_drops_greeting_and_end():
    res = clean_transcript(_t("[|Human|] What is an HbA1c test?",
                              "[|AI|] It measures average blood sugar over about three months.",
                              "[|Human|] How often should it be done?",
                              "[|AI|] Usually every three to six months, as your clinician advises.",
                              "[|Human|] Thanks, no more questions. [END]"))
    assert res.kept, res.reason
    assert [m["role"] for m in res.messages] == ["user", "assistant", "user", "assistant"]
    assert res.messages[0]["content"] == "What is an HbA1c test?"
    assert res.repairs["dropped_greeting"] == 1 and res.repairs["dropped_end_turn"] == 1


def test_clean_drops_cut_off_last_answer_and_the_question_it_leaves_open():
    res = clean_transcript(_t("[|Human|] What is gout?", "[|AI|] A form of arthritis caused by urate crystals.",
                              "[|Human|] Which foods make it worse?", "[|AI|] Red meat, shellfish and"))
    assert res.kept and len(res.messages) == 2
    assert res.repairs["dropped_cut_last_turn"] == 1 and res.repairs["dropped_unanswered_question"] == 1


def test_clean_drops_last_turn_flagged_cut_by_the_token_cap():
    res = clean_transcript(_t("[|Human|] What is gout?", "[|AI|] A form of arthritis.", "[|Human|] And?",
                              "[|AI|] It ends with a full stop."), last_cut=True)
    assert res.kept and len(res.messages) == 2 and res.repairs["dropped_cut_last_turn"] == 1


GOUT = "Gout is a form of arthritis caused by uric acid crystals. It often starts in the big toe at night."


@pytest.mark.parametrize("cut, kept", [
    (GOUT + " Common triggers include red meat and", GOUT),
    (GOUT + " Triggers:\n1. Red meat.\n2.", GOUT + " Triggers:\n1. Red meat."),  # "2." is a list marker
    (GOUT + " Ask e.g.", GOUT),  # an abbreviation is no sentence end
    (GOUT + " See Dr.", GOUT),
    ("Gout is a form of arthritis. Treatments include e.g. colchicine and", None),  # too little is left
    ("Gout is a form of arthritis caused by uric acid crystals in the joints that", None),  # no full sentence
    ("", None),
])
def test_an_answer_cut_by_the_token_cap_is_ended_at_its_last_full_sentence(cut, kept):
    assert trim_cut_answer(cut) == kept


def test_a_list_answer_without_full_stop_is_not_cut_off():
    assert not looks_cut_off("You can try:\n- rest\n- fluids")
    assert looks_cut_off("The most common causes are")
    assert not looks_cut_off("See a doctor.")


@pytest.mark.parametrize("lines, reason", [
    (["[|Human|] What is asthma?", "[|AI|] "], "empty_turn"),
    (["[|Human|] ", "[|AI|] Asthma is a chronic airway disease."], "empty_turn"),
    (["[|Human|] What is asthma?", "[|Human|] And how is it treated?", "[|AI|] With inhalers."], "speaker_swap"),
    (["[|AI|] Asthma is a chronic airway disease.", "[|Human|] Thanks."], "speaker_swap"),
    (["[|Human|] What is asthma?", "[|AI|] A chronic airway disease.\nHuman: what else?"], "role_leak"),
    (["[|Human|] What is asthma?", "[|AI|] A chronic airway disease. <|im_end|>"], "role_leak"),
    (["[|Human|] What is asthma?", "[|AI|] A chronic airway disease. [|User|] hi"], "role_leak"),
    (["[|Human|] User: what is asthma?", "[|AI|] A chronic airway disease."], "role_leak"),
    (["[|Human|] What is asthma?", "[|AI|] A chronic airway disease.", "[|Human|] What is asthma?",
      "[|AI|] It narrows the airways."], "repeated_turn"),
    (["[|Human|] What is asthma?", "[|AI|] A chronic airway disease.", "[|Human|] Is it common?",
      "[|AI|] A chronic airway disease."], "repeated_turn"),
    (["[|Human|] What is asthma?", "[|AI|] " + "Asthma is a disease of the airways. " * 100], "turn_too_long"),
    (["[|Human|] What is asthma?"], "too_short"),
    (["[|Human|] I have no more questions. [END]"], "too_short"),
    ([], "too_short"),
])
def test_malformed_transcripts_are_rejected_with_a_reason(lines, reason):
    res = clean_transcript(_t(*lines))
    assert res.reason == reason and res.messages == []


def test_too_long_dialogue_is_rejected():
    lines = []
    for i in range(12):
        lines += [f"[|Human|] Question number {i} about my blood pressure readings?",
                  f"[|AI|] Answer {i}: " + "Home readings help your clinician judge treatment. " * 20]
    assert clean_transcript(_t(*lines)).reason == "too_long"


def test_turns_after_end_are_dropped_and_ai_end_token_stripped():
    res = clean_transcript(_t("[|Human|] Can I take ibuprofen with warfarin?",
                              "[|AI|] Usually not without advice: it raises bleeding risk. [END]",
                              "[|Human|] [END]", "[|AI|] Goodbye!", "[|Human|] More?"))
    assert res.kept and len(res.messages) == 2 and "[END]" not in res.messages[1]["content"]
    assert res.repairs["dropped_after_end"] == 2 and res.repairs["end_token_stripped"] == 1


def test_text_before_the_first_tag_is_not_a_turn():
    res = clean_transcript("Sure! Here is the conversation:\n" + _t("[|Human|] What is a stent?",
                                                                     "[|AI|] A small mesh tube that holds an artery open."))
    assert res.kept and res.repairs["dropped_preamble"] == 1 and len(res.messages) == 2


def test_continuation_strips_own_tag_and_cuts_the_other_speaker():
    text, rep = continuation("[|AI|] Drink fluids and rest.\n[|Human|] Thanks! [|AI|] You're welcome.", "ai")
    assert text == "Drink fluids and rest." and rep == {"own_tag_stripped": 1, "cut_other_speaker": 1}
    text, rep = continuation("[|Human|] I wrote the human turn.", "ai")  # a swap stays visible to the cleaner
    assert text.startswith("[|Human|]") and not rep
    assert clean_turns([*(Turn(s, c) for s, c in PRIMER), Turn("human", "Hi, what is flu?"),
                        Turn("ai", text)]).reason in {"empty_turn", "speaker_swap", "role_leak"}


def test_end_detection():
    assert is_end("[END]") and is_end("Thanks, I have no more questions.") and is_end("no further questions")
    assert not is_end("What questions should I ask my doctor?")
    assert is_end("|END|") and is_end("Thanks. [ END ]") and not is_end("The END of treatment")


# ---------------------------------------------------------------------------------------------- topics


Q = "Do statins cause muscle pain?"


@pytest.mark.parametrize("raw, expected", [
    ('{"topic": "statin side effects", "question": "' + Q + '"}', (T.Opening("statin side effects", Q), None)),
    ('Sure! ```json\n{"topic": "  insulin   pumps. ", "question": " How  often do I change it? "}\n```',
     (T.Opening("insulin pumps", "How often do I change it?"), None)),
    ('"thyroid nodules"', (T.Opening("thyroid nodules"), None)),  # plain mode: no question, a generated one later
    ('{"topic": "statin side effects"}', (T.Opening("statin side effects"), None)),
    ('{"topic": "statin side effects", "question": 7}', (T.Opening("statin side effects"), None)),
    ('{"topic": "statin side effects", "question": "Why?"}', (T.Opening("statin side effects"), None)),
    ('{"topic": "statin side effects", "question": "[|AI|] Statins can cause..."}',
     (T.Opening("statin side effects"), None)),
    ('{"topic": "statin side effects", "question": "Is there anything else you would like to know?"}',
     (T.Opening("statin side effects"), None)),
    (None, (None, "topic:no_response")),
    ("", (None, "topic:empty_response")),
    ('{"topic": 42}', (None, "topic:missing")),
    ('{"subject": "x"}', (None, "topic:missing")),
    ('{"topic": "a"}', (None, "topic:empty")),
    ('{"topic": "' + "x" * 300 + '"}', (None, "topic:too_long")),
    ('{"topic": "[|AI|] hi there"}', (None, "topic:markup")),
    ('{"topic": "unterminated', (None, "topic:invalid_json")),
    ("line one\nline two", (None, "topic:no_json_object")),
])
def test_parse_topic(raw, expected):
    assert T.parse_topic(raw) == expected


def test_topic_key_dedups_case_articles_and_plurals():
    assert T.topic_key("The side effects of Statins.") == T.topic_key("side effect of statin")
    assert T.topic_key("statin side effects") != T.topic_key("insulin side effects")


def test_grid_covers_every_cell_before_repeating_and_is_seeded():
    g = T.grid(13)
    assert len(g) == len(set(g)) == len(T.SPECIALTIES) * len(T.SETTINGS)
    assert g == T.grid(13) and g != T.grid(14)
    assert T.slot_for(len(g), 13).variant == 1 and (T.slot_for(len(g), 13).specialty, T.slot_for(len(g), 13).setting) == g[0]
    s = T.slot_for(3, 13, ["q1", "q2"])
    assert s.seed_question == "q2" and s.source == "seed" and s.variant == 1


def test_topic_prompt_lists_topics_to_avoid():
    msgs = T.topic_messages(T.slot_for(0, 13), ["statin side effects"])
    assert "statin side effects" in msgs[1]["content"] and msgs[0]["content"] == T.TOPIC_SYSTEM


def test_assistant_prompt_declines_unsafe_requests_and_invents_no_identifiers():
    low = AI_SYSTEM.lower()
    assert "decline unsafe requests" in low
    for word in ("names", "dates of birth", "medical record numbers", "phone", "addresses"):
        assert word in low
    msgs = turn_messages("gout", "a patient", [Turn(s, c) for s, c in PRIMER], "ai")
    assert msgs[0]["content"] == AI_SYSTEM and msgs[1]["content"].endswith("[|AI|]")


# ---------------------------------------------------------------------------------------------- seeds files


@pytest.mark.parametrize("content, match", [
    (None, "seeds file not found"),
    (b"", "holds no questions"),
    (b"\n   \n\t\n", "holds no questions"),
    (b"What is asthma?\nIs \xff\xfe ok?\n", r":2, value b'.xff': not UTF-8"),
    (b"ok?\n" + b"x" * 1200 + b"\n", r":2, value 'xxx"),
    (b"fine?\n[|AI|] injected\n", r":2, value"),
])
def test_bad_seeds_files_are_one_line_errors(tmp_path, capsys, content, match):
    path = tmp_path / "seeds.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MedsynthError, match=match):
        T.read_seeds(path)
    # through the CLI: one line on stderr, exit 2, no LLM started (the endpoint is a closed port)
    rc = main(["build", "chat", "--seeds", str(path), "--n", "2", "--out", str(tmp_path / "out"),
               "--base-url", f"http://127.0.0.1:{closed_port()}/v1", "--llm-model", "m", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("medsynth: error: ") and str(path) in err


def test_seeds_are_deduplicated_and_trimmed(tmp_path):
    (tmp_path / "s.txt").write_text("  What is  gout? \n\nWhat is gout?\nIs tea ok?\n", encoding="utf-8")
    assert T.read_seeds(tmp_path / "s.txt") == ["What is gout?", "Is tea ok?"]


# ---------------------------------------------------------------------------------------------- full build


def _cell(user: str) -> tuple[str, str]:
    sp = re.search(r"Specialty: (.*)", user).group(1)
    st = re.search(r"Situation: (.*)", user).group(1)
    return sp, st


class ChatScript:
    """Plays topic proposer, human and assistant from the request alone (so answers are replay-stable).

    Grid cell 2 proposes cell 0's topic again (a duplicate), and dialogues about cell 1 leak a role tag."""

    def __init__(self, seed: int = 13):
        g = T.grid(seed)
        self.dup_cell, self.first_cell, self.leak_cell = g[2], g[0], g[1]

    def topic(self, cell: tuple[str, str]) -> str:
        cell = self.first_cell if cell == self.dup_cell else cell
        return f"{cell[0]} questions of {cell[1]}"

    def __call__(self, request: dict) -> str | dict:
        system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
        if system == T.TOPIC_SYSTEM:
            return {"topic": self.topic(_cell(user))}
        topic = user.splitlines()[0].removeprefix("Topic: ")
        asked = user.rsplit("\n", 1)[0].count("[|Human|]") - 1  # not the primer's greeting, not the open tag
        if system == AI_SYSTEM:
            if topic == self.topic(self.leak_cell):
                return "Assistant: here is some general information."
            return (f"[|AI|] General information on {topic}, part {asked}. See a clinician if it gets worse.\n"
                    "[|Human|] I will keep writing the human part")
        if asked >= 2:
            return "Thank you, I have no more questions. [END]"
        return f"[|Human|] Question {asked + 1}: what should I know about {topic}?"


def _chat(double: LLMDouble, out: Path, n: int, *extra: str) -> int:
    return build_with_double("chat", double, out, n, "--max-tokens", "200", *extra)


_rows = data_rows


def test_build_chat_end_to_end_resume_and_replay(cache_env):
    out = cache_env / "run"
    script = ChatScript()
    with LLMDouble(script) as double:
        assert _chat(double, out, 3) == 0
        first3 = _rows(out)
        assert _chat(double, out, 5) == 0  # grows: only the missing dialogues are made
        rows = _rows(out)
        assert rows[:3] == first3 and len(rows) == 5 and len({r["id"] for r in rows}) == 5
        calls = double.chat_calls
        before = {p: (out / p).read_bytes() for p in ("data.jsonl", "README.md")}
        assert _chat(double, out, 5) == 0  # finished: 0 LLM calls, same files
        assert double.chat_calls == calls and json.loads((out / "stats.json").read_text())["llm_calls"] == 0
        assert before == {p: (out / p).read_bytes() for p in before}
        assert _chat(double, cache_env / "replay", 5) == 0  # fresh directory, same cache: replayed
        assert double.chat_calls == calls
        assert double.errors == []
    assert [(r["topic"], r["messages"]) for r in _rows(cache_env / "replay")] == [
        (r["topic"], r["messages"]) for r in rows]
    for r in rows:
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and len(roles) == 4
        assert all(m["content"] and "[|" not in m["content"] for m in r["messages"])
        assert r["meta"]["source"] == "proposed" and r["meta"]["prompt_hash"] == prompt_hash()
    assert len({T.topic_key(r["topic"]) for r in rows}) == 5
    stats = json.loads((out / "stats.json").read_text())
    assert stats["kept"] == 5 and stats["rejections"] == {"duplicate_topic": 1, "role_leak": 1}
    assert stats["requests"] == 7 and stats["prompt_tokens"] > 0 and stats["completion_tokens"] > 0
    for repair in ("dropped_greeting", "dropped_end_turn", "own_tag_stripped", "cut_other_speaker"):
        assert stats["repairs"][repair] >= 5
    assert stats["dataset"]["messages_per_dialogue"]["mean"] == 4
    from datasets import load_from_disk

    dd = load_from_disk(str(out / "hf"))
    assert len(dd["train"]) + len(dd["validation"]) == 5 and len(dd["validation"]) >= 1
    assert dd["train"][0]["messages"][0]["role"] == "user" and "content" in dd["train"][0]["messages"][0]
    card = (out / "README.md").read_text()
    for heading in ("Messages (turns) per dialogue", "Topic coverage: specialties", "Rejections by reason",
                    "Tokens used", "double-model", "duplicate_topic", '"max_turns": 6'):
        assert heading in card


def test_build_chat_from_seed_questions_and_turn_cap(cache_env):
    seeds = cache_env / "q.txt"
    seeds.write_text("Is it safe to take ibuprofen for a headache?\nWhat does a high TSH mean?\n", encoding="utf-8")
    out = cache_env / "seeded"

    def never_ends(request: dict) -> str:
        system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
        assert system != T.TOPIC_SYSTEM, "seed questions need no topic proposal"
        k = user.count("[|Human|]") + user.count("[|AI|]")
        return f"Answer number {k} with details." if system == AI_SYSTEM else f"Follow-up number {k}?"

    with LLMDouble(never_ends) as double:
        assert _chat(double, out, 2, "--seeds", str(seeds), "--max-turns", "2") == 0
        assert double.chat_calls == 2 * 3  # seed answered, one follow-up, its answer; cap reached
    rows = _rows(out)
    assert [r["messages"][0]["content"] for r in rows] == ["Is it safe to take ibuprofen for a headache?",
                                                           "What does a high TSH mean?"]
    assert all(len(r["messages"]) == 4 and r["meta"]["source"] == "seed" for r in rows)


def test_assistant_inventing_identifiers_is_rejected(cache_env):
    first = T.grid(13)[0]

    def leaky(request: dict) -> str | dict:
        system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
        if system == T.TOPIC_SYSTEM:
            return {"topic": " for ".join(_cell(user))}
        if system == AI_SYSTEM:
            leak = user.startswith(f"Topic: {first[0]} for {first[1]}")
            return "Your record MRN 4482913 shows a normal result." if leak else f"Rest. ({user.splitlines()[0]})"
        return f"What should I do? ({user.splitlines()[0]})"

    with LLMDouble(leaky) as double:
        assert main(["build", "chat", "--n", "2", "--out", str(cache_env / "r"), "--base-url", double.base_url,
                     "--llm-model", "m", "--no-progress", "--max-turns", "1"]) == 0
    stats = json.loads((cache_env / "r" / "stats.json").read_text())
    assert stats["rejections"] == {"identifier:mrn": 1} and stats["kept"] == 2
    assert all("MRN" not in m["content"] for r in _rows(cache_env / "r") for m in r["messages"])


def test_broken_role_tag_counts_as_a_leak():
    res = clean_transcript(_t("[|Human|] Hi, what is flu?", "[|AI|] A viral infection.\nChat History:\n[|AI] How's it going?"))
    assert res.reason == "role_leak"


# ---------------------------------------------------------------------------------------------- real tiny LLM


def _have_llama() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


@pytest.mark.llm
@pytest.mark.skipif(not _have_llama(), reason="llama-cpp-python is not installed (make setup)")
def test_build_chat_on_the_tiny_local_llm(tmp_path):
    """Plumbing, not quality: SmolLM2-135M through the embedded server; then a re-run makes 0 LLM calls."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MEDSYNTH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(root),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "medsynth", "build", "chat", "--llm", "tiny", "--n", "1", "--max-turns", "1",
           "--max-tokens", "48", "--threads", "1", "--out", str(tmp_path / "out"), "--no-progress"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = _rows(tmp_path / "out")
    assert len(rows) == 1 and all(r["messages"][0]["role"] == "user" and r["messages"][-1]["role"] == "assistant"
                                  for r in rows)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["model"].lower().startswith("smollm2") and stats["llm_calls"] >= 2
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and json.loads((tmp_path / "out" / "stats.json").read_text())["llm_calls"] == 0


def test_a_cut_first_answer_is_trimmed_and_the_dialogue_goes_on(cache_env):
    """The assistant always runs past the 20-token cap: v1 dropped each dialogue at its first answer; now each
    answer ends at its last full sentence, the human asks the follow-up, and the dialogue is kept."""
    tail = " Common triggers include red meat, shellfish, alcohol, sugary drinks and a few medicines such as"

    def rambling(request: dict) -> str | dict:
        system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
        asked = user.count("[|Human|]") - 2  # minus the greeting and the open human tag or the question answered
        if system == T.TOPIC_SYSTEM:
            return {"topic": " for ".join(_cell(user))}
        if system == AI_SYSTEM:
            return f"On question {asked + 1}: {GOUT}{tail}"
        return f"Question {asked + 1}: what else?"

    with LLMDouble(rambling) as double:
        assert main(["build", "chat", "--n", "1", "--out", str(cache_env / "r"), "--base-url", double.base_url,
                     "--llm-model", "m", "--no-progress", "--max-turns", "2", "--max-tokens", "20"]) == 0
    (row,) = _rows(cache_env / "r")
    assert [m["content"] for m in row["messages"]] == [
        "Question 1: what else?", f"On question 1: {GOUT}", "Question 2: what else?", f"On question 2: {GOUT}"]
    stats = json.loads((cache_env / "r" / "stats.json").read_text())
    assert stats["repairs"]["trimmed_cut_answer"] == 2 and stats["rejected"] == 0


# ---------------------------------------------------------------------------------------------- user-role drift


@pytest.mark.parametrize("content, problem", [
    ("What does a high TSH mean?", None),
    ("I would like to know about gout.", None),
    ("Diabetes diet", None),  # terse, but a user's words
    ("Is there anything I can do to prevent it?", None),  # a user asking what *they* can do
    ("I'm sorry to bother you, but is a fever of 38 C dangerous?", None),
    ("Thanks. My mother takes warfarin and has started bleeding from the gums when she brushes her teeth, "
     "and I am worried about it.", None),  # a long statement with a concern in it
    ("Hello! I am a medical information assistant. What would you like to talk about?", "assistant_voice"),
    ("Is there anything else I can help you with?", "assistant_voice"),
    ("Is there anything specific you would like to know about asthma?", "assistant_voice"),
    ("I'm sorry, but I can't assist with that.", "assistant_voice"),
    ("If you have other questions, feel free to ask!", "assistant_voice"),
    ("Do you have any other questions?", "assistant_voice"),
    ("Sure! I'd be happy to explain more about inhalers.", "assistant_voice"),
    ("Good morning! I am here to help you get ready for your scan.", "assistant_voice"),
    ("Thank you for your question,", "assistant_voice"),
    ("Is there anything else I can help with?", "assistant_voice"),
    ("Do you have any concerns about your inhaler at school?", "assistant_voice"),
    ("What other concerns do you have about drug interactions?", "assistant_voice"),
    ("Can I help my son with his inhaler at school?", None),
    ("Inhaled steroids reduce airway inflammation and are taken every day, even when there are no symptoms, "
     "to prevent attacks.", "statement"),
])
def test_user_voice_problem(content, problem):
    assert user_voice_problem(content) == problem


def test_the_cleaner_ends_a_dialogue_before_a_user_turn_in_the_assistants_voice():
    res = clean_transcript(_t("[|Human|] What is gout?", "[|AI|] A form of arthritis caused by urate crystals.",
                              "[|Human|] Is there anything else you would like to know about gout?",
                              "[|AI|] Gout attacks often start in the big toe.", "[|Human|] Why the toe?",
                              "[|AI|] It is cooler there, so urate crystallises more easily."))
    assert [m["content"] for m in res.messages] == ["What is gout?",
                                                    "A form of arthritis caused by urate crystals."]
    assert res.repairs["dropped_from_user_drift"] == 4
    first = clean_transcript(_t("[|Human|] Hello! How can I help you today?", "[|AI|] I have a question."))
    assert first.reason == "too_short"
    # a leak inside the dropped part does not reject what came before it
    leaky = clean_transcript(_t("[|Human|] What is gout?", "[|AI|] A form of arthritis.",
                                "[|Human|] Feel free to ask. |AI| Sure."))
    assert leaky.kept and len(leaky.messages) == 2


def test_a_seed_question_is_never_taken_for_drift_but_later_user_turns_are():
    seed = ("My father started apixaban and metoprolol last week after his atrial fibrillation was found on an "
            "ECG at the clinic during a routine visit")
    turns = [Turn("human", seed), Turn("ai", "Both are common after that diagnosis."),
             Turn("human", "Do you have any other questions?"), Turn("ai", "No.")]
    assert clean_turns(turns).reason == "too_short"
    res = clean_turns(turns, trust_opening=True)
    assert [m["content"] for m in res.messages] == [seed, "Both are common after that diagnosis."]


def test_a_broken_own_tag_is_stripped_and_a_broken_other_tag_is_a_leak():
    text, rep = continuation("|Human| Hi! Is green tea safe with warfarin?", "human")
    assert text == "Hi! Is green tea safe with warfarin?" and rep["own_tag_stripped"] == 1
    res = clean_transcript(_t("[|Human|] Is tea safe?", "[|AI|] Usually, in moderation. |Human| And coffee?"))
    assert res.reason == "role_leak"


def test_build_opens_with_the_proposed_question_and_asks_a_drifting_user_again(cache_env):
    """The topic step's question is the user's first message (no call writes it); a follow-up in the assistant's
    voice is asked once more with another seed: slot 0's retry is a real question and its dialogue goes on,
    slot 1's retry drifts again and its dialogue ends with the first exchange."""
    cells = T.grid(13)

    def drifting(request: dict) -> str | dict:
        system, user = request["messages"][0]["content"], request["messages"][-1]["content"]
        if system == T.TOPIC_SYSTEM:
            sp, st = _cell(user)
            return {"topic": f"{sp} for {st}", "question": f"What should I know about {sp}?"}
        topic = user.splitlines()[0].removeprefix("Topic: ")
        if system == AI_SYSTEM:
            return f"General facts on {topic}, answer {user.count('[|AI|]')}. See a clinician if it gets worse."
        if request.get("seed") == T.llm_seed(13, 0, "turn1.retry"):  # slot 0's second try is a question
            return "How long does it take to work?"
        return "Is there anything else you would like to know?"

    with LLMDouble(drifting) as double:
        assert main(["build", "chat", "--n", "2", "--out", str(cache_env / "r"), "--base-url", double.base_url,
                     "--llm-model", "m", "--no-progress", "--max-turns", "2"]) == 0
        topic_calls = sum(1 for r in double.requests if r["messages"][0]["content"] == T.TOPIC_SYSTEM)
        assert double.chat_calls == topic_calls + 2 + 2 + 1 + 2  # slot 0: answer, user + retry, answer; slot 1
    rows = _rows(cache_env / "r")
    assert [m["content"] for m in rows[0]["messages"]][0] == f"What should I know about {cells[0][0]}?"
    assert rows[0]["messages"][2]["content"] == "How long does it take to work?" and len(rows[0]["messages"]) == 4
    assert len(rows[1]["messages"]) == 2
    stats = json.loads((cache_env / "r" / "stats.json").read_text())
    assert stats["repairs"]["retried_user_turn"] == 2 and stats["repairs"]["dropped_from_user_drift"] == 1
    assert "no_opening_question" not in stats["repairs"] and stats["rejected"] == 0
