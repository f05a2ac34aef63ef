"""The parser survives what LLMs actually return: None, prose, fences, broken JSON, odd shapes."""

import pytest

from medsynth.generate.parse import load_json_object, parse_inline_answer, parse_json_answer, strip_inline


@pytest.mark.parametrize("raw,reason", [
    (None, "no_response"),
    ("", "empty_response"),
    ("   \n", "empty_response"),
    ("I cannot help with that.", "no_json_object"),
    ('{"text": "unterminated', "invalid_json"),
    ('{"text": "a" "b"}', "invalid_json"),
    ("[1, 2, 3]", "no_json_object"),
])
def test_unparseable_answers_are_counted_not_raised(raw, reason):
    res = parse_json_answer(raw)
    assert res.text is None and res.error == reason


def test_plain_answer():
    res = parse_json_answer('{"text": "Aspirin eased the migraine.", "entities": [{"text": "Aspirin", "label": "Chemical"},'
                            ' {"text": "migraine", "label": "Disease"}]}')
    assert res.error is None
    assert res.text == "Aspirin eased the migraine."
    assert [(m.text, m.label) for m in res.mentions] == [("Aspirin", "Chemical"), ("migraine", "Disease")]


def test_code_fence_and_prose_are_stripped_and_counted():
    raw = 'Sure! Here it is:\n```json\n{"text": "Gout flared.", "entities": [{"text": "Gout", "label": "Disease"}]}\n```\nHope it helps'
    res = parse_json_answer(raw)
    assert res.text == "Gout flared." and res.mentions[0].text == "Gout"
    assert res.repairs["code_fence"] == 1


def test_prose_before_object_and_trailing_comma():
    raw = 'Output: {"text": "Lithium caused tremor.", "entities": [{"text": "tremor", "label": "Disease"},],}'
    res = parse_json_answer(raw)
    assert res.error is None and res.mentions[0].text == "tremor"
    assert res.repairs["prose_around_json"] == 1 and res.repairs["trailing_comma"] == 1


def test_braces_inside_strings_do_not_confuse_the_scanner():
    obj, err, _ = load_json_object('note {"text": "a {weird} } sentence", "entities": []} tail')
    assert err is None and obj["text"] == "a {weird} } sentence"


@pytest.mark.parametrize("entities,expected", [
    ([["heparin", "Chemical"]], [("heparin", "Chemical")]),
    ({"Disease": ["sepsis", "shock"]}, [("sepsis", "Disease"), ("shock", "Disease")]),
    ([{"Chemical": "heparin"}], [("heparin", "Chemical")]),
    ([{"mention": "sepsis", "type": "Disease"}], [("sepsis", "Disease")]),
    ([{"text": 5, "label": "Disease"}, "junk", None], []),
    ("not a list", []),
])
def test_entity_shapes(entities, expected):
    import json

    res = parse_json_answer(json.dumps({"text": "Sepsis and shock after heparin.", "entities": entities}))
    assert res.error is None
    assert [(m.text, m.label) for m in res.mentions] == expected


def test_missing_or_wrong_text_field():
    assert parse_json_answer('{"entities": []}').error == "missing_text"
    assert parse_json_answer('{"text": 12, "entities": []}').error == "missing_text"


def test_offsets_kept_only_when_integers():
    res = parse_json_answer('{"text": "Gout.", "entities": [{"text": "Gout", "label": "Disease", "start": 0, "end": 4},'
                            ' {"text": "Gout", "label": "Disease", "start": "0", "end": true}]}')
    assert (res.mentions[0].start, res.mentions[0].end) == (0, 4)
    assert (res.mentions[1].start, res.mentions[1].end) == (None, None)


def test_inline_markup_gives_exact_offsets():
    text, mentions = strip_inline("After [cisplatin](Chemical), [acute kidney injury](Disease) developed.")
    assert text == "After cisplatin, acute kidney injury developed."
    for m in mentions:
        assert text[m.start:m.end] == m.text
    assert [(m.text, m.label) for m in mentions] == [("cisplatin", "Chemical"), ("acute kidney injury", "Disease")]


def test_inline_answer_variants():
    assert parse_inline_answer('{"text": "[Asthma](Disease) worsened."}').mentions[0].text == "Asthma"
    bare = parse_inline_answer("[Asthma](Disease) worsened.")
    assert bare.text == "Asthma worsened." and bare.repairs["bare_inline_text"] == 1
    assert parse_inline_answer("no markup, no json").error == "no_json_object"
    assert parse_inline_answer(None).error == "no_response"
    plain = parse_inline_answer('{"text": "Nothing to mark here."}')
    assert plain.text == "Nothing to mark here." and plain.mentions == []
