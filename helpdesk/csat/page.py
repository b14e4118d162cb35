"""The words of the customer's rating page, in Czech, Slovak and English. Pure: no I/O.

The page speaks the language of the ticket it rates (the ticket's, else the customer's,
as the survey question does), unless the customer picks one with `?lang=`; a link that
is not valid (no ticket to ask) follows `?lang=`, then the browser's Accept-Language.
"""

from __future__ import annotations

from typing import Final, Literal, cast

Language = Literal["cs", "sk", "en"]
LANGUAGES: Final = ("cs", "sk", "en")
DEFAULT: Final[Language] = "en"

_TEXT: Final[dict[str, dict[Language, str]]] = {
    "title": {"cs": "Jak jsme si vedli?", "sk": "Ako sme si viedli?", "en": "How did we do?"},
    "rate_us": {"cs": "Ohodnoťte nás:", "sk": "Ohodnoťte nás:", "en": "Rate us:"},
    "very_bad": {"cs": "velmi špatné", "sk": "veľmi zlé", "en": "very bad"},
    "excellent": {"cs": "výborné", "sk": "výborné", "en": "excellent"},
    "your_rating": {
        "cs": "Vaše hodnocení: {rating} z 5. Děkujeme!",
        "sk": "Vaše hodnotenie: {rating} z 5. Ďakujeme!",
        "en": "Your rating: {rating} of 5. Thank you!",
    },
    "comment": {
        "cs": "Chcete něco dodat? (nepovinné)",
        "sk": "Chcete niečo dodať? (nepovinné)",
        "en": "Anything to add? (optional)",
    },
    "send": {"cs": "Odeslat", "sk": "Odoslať", "en": "Send"},
    "thanks": {"cs": "Děkujeme!", "sk": "Ďakujeme!", "en": "Thank you!"},
    "rated": {
        "cs": "Vaše hodnocení: {rating} z 5.",
        "sk": "Vaše hodnotenie: {rating} z 5.",
        "en": "Your rating: {rating} of 5.",
    },
    "invalid_title": {
        "cs": "Tento odkaz není platný",
        "sk": "Tento odkaz nie je platný",
        "en": "This link is not valid",
    },
    "invalid": {
        "cs": "Odkaz na hodnocení neznáme nebo už vypršel.",
        "sk": "Odkaz na hodnotenie nepoznáme alebo už vypršal.",
        "en": "The rating link is unknown or has expired.",
    },
    "closed_title": {
        "cs": "Hodnocení je uzavřené",
        "sk": "Hodnotenie je uzavreté",
        "en": "Rating closed",
    },
    # The service's refusals, by their English text.
    "This survey is closed": {
        "cs": "Tento dotazník je uzavřený.",
        "sk": "Tento dotazník je uzavretý.",
        "en": "This survey is closed",
    },
    "Choose a rating from 1 to 5 first": {
        "cs": "Nejdříve zvolte hodnocení od 1 do 5.",
        "sk": "Najprv zvoľte hodnotenie od 1 do 5.",
        "en": "Choose a rating from 1 to 5 first",
    },
}


def text(key: str, language: Language, **values: object) -> str:
    """The page's words for `key`; an unknown key (a refusal not listed) is shown as is."""
    words = _TEXT.get(key, {}).get(language, key)
    for name, value in values.items():
        words = words.replace("{" + name + "}", str(value))
    return words


def label(rating: int, language: Language) -> str:
    if rating == 1:
        return f"1 ({text('very_bad', language)})"
    if rating == 5:
        return f"5 ({text('excellent', language)})"
    return str(rating)


def supported(code: str | None) -> Language | None:
    """`cs`, `sk` or `en` from a language tag (`cs-CZ`, `SK`), else None."""
    primary = (code or "").strip().split("-")[0].split("_")[0].lower()
    return cast(Language, primary) if primary in LANGUAGES else None


def from_accept_language(header: str | None) -> Language | None:
    """The first supported language of an Accept-Language header, by its q order."""
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate((header or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag))
    for negative, _, tag in sorted(ranked):
        found = supported(tag)
        if found is not None and negative < 0:
            return found
    return None


def choose(
    requested: str | None, ticket_language: str | None, accept_language: str | None
) -> Language:
    """`?lang=` wins, then the ticket's language, then the browser's, then English."""
    return (
        supported(requested)
        or supported(ticket_language)
        or from_accept_language(accept_language)
        or DEFAULT
    )
