"""The classifier as agents and admins rely on it: spellings with or without diacritics and
in any case find the same rule, whole words only, prefixes and phrases, languages told
apart, and a reason that names what decided."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.routing.classification_rules import (
    ClassificationRules,
    RulesError,
    default_rules,
    default_rules_toml,
    fold,
    load_rules,
    term_pattern,
)
from helpdesk.routing.classify import classify

LANGUAGES = [
    {"code": "cs", "stopwords": ["jsem", "děkuji"], "letters": "řůě"},
    {"code": "sk", "stopwords": ["som", "ďakujem"], "letters": "äľĺôŕ"},
    {"code": "en", "stopwords": ["the", "my"]},
]


def make_rules(*rules: dict[str, Any], **settings_: Any) -> ClassificationRules:
    """Rules as an admin would send them (the JSON of PUT /routing/classification-rules)."""
    return msgspec.convert(
        {"languages": LANGUAGES, "rules": list(rules), **settings_}, ClassificationRules
    )


def rule(id: str, category: str, *terms: str, weight: float = 3.0, **extra: Any) -> dict[str, Any]:
    return {"id": id, "category": category, "weight": weight, "terms": list(terms), **extra}


def category_of(rules: ClassificationRules, text: str, subject: str = "") -> str:
    return classify(rules, subject, text).category


# --- normalization and matching ------------------------------------------------------------


def test_fold_strips_diacritics_and_case() -> None:
    assert fold("REKLAMÁCIA Vrácení ŘŮĚ äľĺôŕ") == "reklamacia vraceni rue allor"
    assert fold("doesn\u2019t") == "doesn't"
    assert fold("Straße") == "strasse"


@pytest.mark.parametrize(
    "text",
    [
        "reklamace",
        "Reklamace zboží",
        "REKLAMACE ZBOZI",
        "reklamácia",
        "Chci podat REKLAMACI",
        "reklamovat",
        "reklamuji hrnek",
        "Reklamačný protokol",
    ],
)
def test_complaint_words_match_with_or_without_diacritics_and_in_any_case(text: str) -> None:
    rules = make_rules(rule("complaint.cs", "complaint", "reklam*"))
    assert category_of(rules, text) == "complaint"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("vraceni penez", "return"),
        ("Vrácení zboží", "return"),
        ("vrátenie tovaru", "return"),
        ("objednavka 123", "order"),
        ("Objednávka č. 123", "order"),
        ("complaint about my order", "complaint"),
        ("I want a REFUND", "return"),
        ("return", "return"),
    ],
)
def test_the_issue_spellings_with_the_default_rules(text: str, category: str) -> None:
    assert category_of(default_rules(), text) == category


def test_words_match_whole_words_only() -> None:
    rules = make_rules(rule("return.en", "return", "return"))
    assert category_of(rules, "I want to return it") == "return"
    assert category_of(rules, "Return, please.") == "return"
    # A plain term is a whole word: other words that contain it are not it.
    assert category_of(rules, "returning customer") == "other"
    assert category_of(rules, "nonreturnable") == "other"
    assert category_of(rules, "return_label") == "other"


def test_a_star_makes_a_prefix_of_a_word_not_of_a_substring() -> None:
    rules = make_rules(rule("return.en", "return", "return*"))
    for text in ("returns", "returned the shoes", "Returning it"):
        assert category_of(rules, text) == "return", text
    assert category_of(rules, "nonreturnable") == "other"


def test_phrases_match_their_words_in_order_across_spaces_and_punctuation() -> None:
    rules = make_rules(
        rule("order.cs", "order", "kdy dorazí", "objednávk* č."),
        rule("complaint.en", "complaint", "doesn't work"),
    )
    assert category_of(rules, "Kdy  dorazi?") == "order"
    assert category_of(rules, "kdy\nDORAZÍ moje zboží") == "order"
    assert category_of(rules, "objednavky c.12345") == "order"
    assert category_of(rules, "dorazí kdy") == "other"
    assert category_of(rules, "it doesn\u2019t work") == "complaint"  # typographic apostrophe
    assert category_of(rules, "it does work") == "other"


def test_punctuation_terms_match_anywhere() -> None:
    rules = make_rules(rule("question.mark", "question", "?", weight=1.0))
    assert category_of(rules, "skladem?") == "question"
    assert category_of(rules, "skladem.") == "other"


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ("", "empty term"),
        ("re*", "at least 3 characters"),
        ("re*klam", "only ends a word"),
    ],
)
def test_terms_that_would_match_too_much_are_refused(term: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        term_pattern(term)
    with pytest.raises(msgspec.ValidationError, match=message):
        make_rules(rule("bad", "complaint", term))


TERMS = ["reklam*", "return", "return*", "kdy dorazí", "doesn't work", "?", "č. obj", "ř*"]
PIECES = [
    "reklamace",
    "Reklamácia",
    "return",
    "returning",
    "nonreturn",
    "kdy",
    "dorazi",
    "doesn't",
    "work",
    "č.",
    "obj",
    "řeka",
    " ",
    "  ",
    ",",
    "?",
    "_",
    "1",
    "\n",
    "'",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join) | st.text(max_size=40))
def test_rules_find_exactly_what_one_regex_per_term_finds(text: str) -> None:
    """The classifier looks words up in tables instead of running every term's regex; both
    must find the same terms."""
    terms = [t for t in TERMS if len(t.removesuffix("*")) >= 3 or "*" not in t]
    rules = make_rules(*(rule(f"t{i}", "question", term) for i, term in enumerate(terms)))
    folded = fold(text)
    expected = {f"t{i}" for i, term in enumerate(terms) if re.search(term_pattern(term), folded)}
    assert set(classify(rules, "", text).matched_rules) == expected


# --- scoring, priorities, conditions -------------------------------------------------------


def test_the_stronger_category_wins_and_the_reason_names_rules_and_terms() -> None:
    rules = make_rules(
        rule("complaint.cs", "complaint", "rozbit*", "reklam*"),
        rule("order.mention", "order", "objednávk*", weight=1.0),
    )
    result = classify(rules, "Reklamace", "Objednávka 123 přišla rozbitá")
    assert result.category == "complaint"
    assert "rule complaint.cs 'reklamace', 'rozbita' (+6)" in result.reason
    assert "runner-up order 1" in result.reason
    assert result.matched_rules == ["complaint.cs", "order.mention"]
    assert 0 < result.confidence < 1


def test_a_word_two_rules_of_one_category_share_counts_once() -> None:
    rules = make_rules(
        rule("complaint.cs", "complaint", "nefunguje"),
        rule("complaint.sk", "complaint", "nefunguje"),
        rule("order.cs", "order", "zásilk*", "sledovací", weight=2.5),
    )
    result = classify(rules, "", "Sledovací číslo nefunguje, zásilka neexistuje")
    assert result.category == "order"
    assert set(result.matched_rules) == {"complaint.cs", "complaint.sk", "order.cs"}


def test_subject_words_count_more() -> None:
    rules = make_rules(
        rule("complaint.en", "complaint", "broken"),
        rule("return.en", "return", "refund"),
    )
    assert classify(rules, "Broken", "refund?").category == "complaint"
    assert classify(rules, "Refund", "broken").category == "return"


def test_below_min_score_is_the_fallback_with_the_reason() -> None:
    rules = make_rules(rule("question.weak", "question", "jak", weight=0.5))
    result = classify(rules, "", "jak to")
    assert (result.category, result.confidence) == ("other", 0.3)
    assert "below min_score 1: rule question.weak 'jak'" in result.reason
    assert classify(rules, "", "nothing here").reason.startswith("no rule matched")


def test_a_higher_priority_rule_outranks_keywords_and_sender_patterns_match() -> None:
    rules = make_rules(
        rule("complaint.cs", "complaint", "reklamace", "rozbité", "vadné"),
        {
            "id": "other.robots",
            "category": "other",
            "weight": 1.0,
            "priority": 10,
            "senders": ["noreply@*", "*@heureka.cz"],
        },
    )
    text = "Reklamace: rozbité a vadné zboží"
    assert classify(rules, "", text, sender="jana@example.cz").category == "complaint"
    robot = classify(rules, "", text, sender="NoReply@shop.cz")
    assert robot.category == "other"
    assert "rule other.robots (+1)" in robot.reason
    assert robot.matched_rules == ["other.robots", "complaint.cs"]
    assert classify(rules, "", text, sender="info@heureka.cz").category == "other"
    assert classify(rules, "", text).category == "complaint"  # no sender: condition fails


def test_channel_conditions_restrict_a_rule() -> None:
    rules = make_rules(
        rule("question.chat", "question", "?", weight=1.0, channels=["webchat", "telegram"])
    )
    assert classify(rules, "", "skladem?", "webchat").category == "question"
    assert classify(rules, "", "skladem?", "Telegram").category == "question"
    assert classify(rules, "", "skladem?", "email").category == "other"
    assert classify(rules, "", "skladem?").category == "other"


def test_ties_go_to_the_category_listed_first() -> None:
    rules = make_rules(
        rule("complaint.en", "complaint", "broken"),
        rule("return.en", "return", "return"),
    )
    assert category_of(rules, "broken, return") == "complaint"
    flipped = msgspec.structs.replace(rules, tie_order=("return", "complaint"))
    assert category_of(flipped, "broken, return") == "return"


def test_quoted_lines_are_not_read() -> None:
    rules = make_rules(rule("complaint.en", "complaint", "broken"))
    assert category_of(rules, "thanks!\n> the kettle is broken\n>> broken") == "other"


# --- language ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "text", "language"),
    [
        ("", "Dobrý den, hrnek přišel rozbitý, chci ho reklamovat.", "cs"),
        ("", "Dobry den, tovar prisiel poskodeny, chcem reklamaciu.", "sk"),
        ("", "Dobrý deň, ďakujem, tovar prišiel v poriadku.", "sk"),
        ("", "dekuji, jsem spokojena", "cs"),
        ("", "kde je moja objednavka? uz tyzden nic", "sk"),
        ("Where is my order?", "My order 12345 has not arrived yet. Tracking?", "en"),
        ("", "i want my money back not store credit", "en"),
        ("Vrácení zboží", "Chci vrátit boty, nesedí mi velikost. Jak postupovat?", "cs"),
        ("", "Poslať späť? Veľmi rád.", "sk"),
    ],
)
def test_languages_are_told_apart(subject: str, text: str, language: str) -> None:
    result = classify(default_rules(), subject, text)
    assert result.language == language, result.reason
    assert f"language: {language} (" in result.reason


def test_no_language_signal_falls_back_to_the_default_language() -> None:
    result = classify(default_rules(), "", "👍")
    assert result.language == "cs"
    assert result.reason.endswith("language: cs (default)")
    slovak_default = msgspec.structs.replace(default_rules(), default_language="sk")
    assert classify(slovak_default, "", "👍").language == "sk"


def test_a_word_both_languages_share_without_diacritics_decides_nothing() -> None:
    # "den" is Czech "den" or Slovak "deň" written bare: no vote; "sa" is Slovak.
    assert classify(default_rules(), "", "dobry den").reason.endswith("(default)")
    assert classify(default_rules(), "", "dobry den, ako sa mate").language == "sk"


def test_the_sender_domain_is_a_language_signal() -> None:
    result = classify(default_rules(), "", "12345", sender="jana@posta.sk")
    assert result.language == "sk"
    assert "sender .sk" in result.reason


# --- rules as data -------------------------------------------------------------------------


def test_default_rules_load_and_survive_the_admin_api_round_trip(tmp_path: Path) -> None:
    rules = default_rules()
    assert {r.category for r in rules.rules} == {
        "complaint",
        "order",
        "return",
        "question",
        "other",
    }
    assert {p.code for p in rules.languages} >= {"cs", "sk", "en"}
    stored = msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(rules)))
    assert msgspec.convert(stored, ClassificationRules) == rules
    copy = tmp_path / "classification.toml"
    copy.write_bytes(default_rules_toml())
    assert load_rules(copy) == rules


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("languages = [", "not valid TOML"),
        ("languages = []\nrules = []", "at least one language"),
        (
            '[[languages]]\ncode = "cs"\n[[rules]]\nid = "a"\ncategory = "nope"\nweight = 1.0\n'
            'terms = ["x"]',
            "rules[0].category",
        ),
        (
            '[[languages]]\ncode = "cs"\n[[rules]]\nid = "a"\ncategory = "order"\nweight = 1.0\n'
            'terms = ["xyz"]\n[[rules]]\nid = "a"\ncategory = "order"\nweight = 1.0\n'
            'terms = ["abc"]',
            "rule ids must be unique: a",
        ),
        (
            '[[languages]]\ncode = "cs"\n[[rules]]\nid = "a"\ncategory = "order"\nweight = 1.0',
            "needs terms or a channel or sender condition",
        ),
        ('default_language = "de"\nrules = []\n[[languages]]\ncode = "cs"', "default_language"),
    ],
)
def test_invalid_rule_files_are_refused_with_one_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RulesError, match=re.escape(message)) as caught:
        load_rules(path)
    assert "\n" not in str(caught.value)


def test_a_missing_rules_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read classification rules"):
        load_rules(tmp_path / "missing.toml")
