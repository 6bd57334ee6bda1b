"""How mail clients mark quoted history, in the languages our merchants write (for ``quoting``).

Attribution lines ("On … wrote:", "În … a scris:", "Op … schreef …:", "Em … escreveu:",
"W dniu … pisze:"), Outlook header blocks ("From:/Sent:", "Van:/Verzonden:", "De:/Enviado:",
"Od:/Wysłano:", "De la:/Trimis:"), "Original Message" and forward separators, and the
"Sent from my phone" family. mail-parser-reply's language table supplies the attribution
patterns of the languages we do not cover ourselves (German, French, Spanish, Italian,
Scandinavian, Czech, CJK), so a quote from a foreign correspondent is still recognised.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mailparser_reply.constants import MAIL_LANGUAGES

# Attribution lines that end with the verb (the name comes before it).
_CLOSERS = (
    r"wrote|a\s+scris|escreveu|pisze|napisa[łl](?:\(a\)|a)?|napisała|написал(?:\(а\)|а)?|"  # noqa: RUF001
    r"a\s+écrit|escribió|ha\s+scritto|skrev|kirjoitti|schrieb|schreef|"
    r"het\s+volgende\s+geschreven|geschreven"
)
_ATTRIBUTION_END = re.compile(rf"(?:{_CLOSERS})\s*:\s*$", re.I)
_CLOSER_FIRST = re.compile(rf"^(?:{_CLOSERS})\b", re.I)
# …and those where the name follows the verb: "Op … schreef Jan <j@x.nl>:".
_ATTRIBUTION_VERB = re.compile(
    r"\b(?:schreef|schrieb|escreveu\s+no\s+dia|wrote\s+on)\b.{0,200}:\s*$", re.I
)
_VERBS_BEFORE_NAME = ("schreef", "schrieb", "escreveu", "wrote")
# …and those that open with the verb and end with the date: Apple Mail in Polish,
# "Wiadomość napisana przez Jan <j@x.pl> w dniu 3 mar 2025, o godz. 10:12:".
_ATTRIBUTION_OPENING = re.compile(r"^Wiadomo[śs][ćc]\s+napisana\s+przez\s.{3,300}:\s*$", re.I)
_ATTRIBUTION_START = re.compile(
    r"^(?:-+\s*)?(?:On|Op|Em|În|In|Pe|La|W\s+dniu|Dnia|Am|Le|El|Il)\s", re.I
)
_EVIDENCE = re.compile(r"\d|@")

# Other languages' attribution patterns, as mail-parser-reply writes them; ours above
# take precedence and are written for single lines.
_FOREIGN_LANGUAGES = ("de", "fr", "es", "it", "cs", "da", "sv", "ja", "ko", "zh")
_FOREIGN_ATTRIBUTION = re.compile(
    "|".join(
        f"(?:{MAIL_LANGUAGES[language]['wrote_header']})"
        for language in _FOREIGN_LANGUAGES
        if "wrote_header" in MAIL_LANGUAGES.get(language, {})
    ),
    re.I,
)
_LONGEST_ATTRIBUTION = 400

# An attribution no pattern knows, recognised by shape when a quote follows it:
# "26.06.2014, 14:41, "Alexander L" <abc@example.com>:".
_DATE_OR_TIME = re.compile(r"\d{1,2}:\d{2}|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\b(?:19|20)\d{2}\b")
# Addresses are looked for token by token: one regex searching a long line for "x@y.z"
# backtracks over every start position (quadratic on a 300-character line).
_TOKEN_SEPARATORS = re.compile(r"[\s<>()\"',;:\[\]]+")
_ADDRESS = re.compile(r"[^@]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})*\.[A-Za-z]{2,}\.?")
_CLOSING_WORDS = 48  # the verb and the colon sit in a line's last characters

# Header fields of a quoted message, per language: (from-like, other).
_FROM_FIELDS = r"From|De|De\s+la|Van|Od|Von|Da|Från|Fra|От|Från|发件人"
_OTHER_FIELDS = (
    r"Sent|Date|To|Cc|Bcc|Subject|Reply-To|Organization|Trimis|Dat[ăa]|Către|Catre|Subiect|"
    r"Verzonden|Verstuurd|Datum|Aan|Onderwerp|Enviad[oa]s?(?:\s+em)?|Data|Para|Assunto|"
    r"Wys[łl]ano|Wys[łl]ane|Do|Temat|DW|"
    r"Gesendet|An|Betreff|Envoyé|À|Objet|Fecha|Asunto|Inviato|Oggetto|A|Отправлено|Кому|Тема|"
    r"Дата|Копия|Skickat|Till|Ämne|Sendt|Til|Emne|发送时间|收件人|主题|抄送"
)
_FIELD_LINE = re.compile(
    rf"^\s*\*{{0,2}}(?:(?P<from>{_FROM_FIELDS})|(?P<other>{_OTHER_FIELDS}))\s*\*{{0,2}}\s*:",
    re.I,
)
# Anchors of history, found in a whole text at once (each matches the newline before
# its line): a From-like field line (header blocks are grown around it), or a line
# that may be a separator. Case-sensitive on purpose: a case-blind alternation this
# long costs more than the rest of the reply extraction together.
FROM_FIELD_LINE = re.compile(
    rf"\n[ \t]*\*{{0,2}}(?:{_FROM_FIELDS}|FROM|DE|VAN|OD)[ \t]*\*{{0,2}}[ \t]*:"
)
SEPARATOR_LINE = re.compile(
    r"\n(?=[ \t]*[-_=*~]{2}|[ \t]*(?:Begin|In[íi]cio|Pocz[ąa]tek|Începutul))"
)

# "-----Original Message-----", forward separators, Apple's "Begin forwarded message:".
_HISTORY_PHRASES = (
    r"Original\s+Message|Forwarded\s+message|Forwarded\s+Message|Mesaj(?:ul)?\s+original|"
    r"Mesaj\s+redirec[țţt]ionat|Mesaj\s+transmis|Oorspronkelijk\s+bericht|"
    r"Doorgestuurd\s+bericht|Mensagem\s+original|Mensagem\s+encaminhada|"
    r"Mensagem\s+reencaminhada|Wiadomo[śs][ćc]\s+oryginalna|Oryginalna\s+wiadomo[śs][ćc]|"
    r"Wiadomo[śs][ćc]\s+przekazana(?:\s+dalej)?|Przekazana\s+wiadomo[śs][ćc]|"
    r"Urspr[üu]ngliche\s+Nachricht|Weitergeleitete\s+Nachricht|Message\s+d'origine|"
    r"Message\s+transf[ée]r[ée]|Mensaje\s+original|Mensaje\s+reenviado|Messaggio\s+originale|"
    r"Messaggio\s+inoltrato|Исходное\s+сообщение|Пересылаемое\s+сообщение"
)
_HISTORY_SEPARATOR = re.compile(
    rf"^\s*[-_=*~]{{2,}}\s*(?:{_HISTORY_PHRASES})\s*[-_=*~]{{2,}}\s*$"
    r"|^\s*(?:Begin\s+forwarded\s+message|Begin\s+doorgestuurd\s+bericht|"
    r"In[íi]cio\s+da\s+mensagem\s+(?:re)?encaminhada|Pocz[ąa]tek\s+przekazanej\s+wiadomo[śs]ci|"
    r"Începutul\s+mesajului\s+redirec[țţ]ionat)\s*:\s*$",
    re.I,
)

# Signature delimiters: a bare "--"/"__" line is one; "-Name" and "-- text" only start a
# signature when the block they open is short (a list of "-- item" lines is not one).
_STRONG_DELIMITER = re.compile(r"^\s*(?:-{2,}|_{2,})\s*$")
_WEAK_DELIMITER = re.compile(r"^\s*(?:--|__|-\w)")
_LONG_SEPARATOR = re.compile(r"^ ?[_-]{7,}\s*$")
_SEPARATOR = re.compile(r"^[\s_\-=*~\u2014\u2013]{3,}$")  # dashes, em and en dashes

# "Sent from my iPhone" and its translations; mail-parser-reply adds the languages we lack.
_SENT_FROM_PHRASES = (
    r"Sent\s+from(?:\s+my)?|Sent\s+with|Sent\s+via|Get\s+Outlook\s+for|Trimis\s+de\s+pe|"
    r"Trimis\s+din|Trimis\s+cu|Obține[țţ]i\s+Outlook\s+pentru|Verzonden\s+(?:vanaf|met)(?:\s+mijn)?|"
    r"Verstuurd\s+(?:vanaf|met)(?:\s+mijn)?|Download\s+Outlook\s+voor|Enviado\s+d[oe](?:\s+meu)?|"
    r"Enviado\s+(?:a\s+partir|através)\s+d[oe](?:\s+meu)?|Obter\s+o\s+Outlook\s+para|"
    r"Baixe\s+o\s+Outlook\s+para|Wys[łl]ane\s+z(?:\s+mojego)?|Wys[łl]ano\s+z(?:\s+mojego)?|"
    r"Pobierz\s+Outlook\s+dla|Gesendet\s+von(?:\s+meinem)?|Envoy[ée]\s+de\s+mon|Inviato\s+da"
)
_VALEDICTION = re.compile(
    r"^(?:thanks?(?: you)?|many thanks|thank you very much|cheers|regards|"
    r"best(?: regards| wishes)?|kind regards|sincerely|cu stim[ăa]|cu respect|"
    r"mul[țţt]umesc(?: frumos)?|o zi bun[ăa]|toate cele bune|met vriendelijke groet(?:en)?|"
    r"vriendelijke groet(?:en)?|groet(?:en|jes)?|"
    r"hartelijke groet(?:en)?|bedankt|atenciosamente|obrigad[oa]|abra[çc]os?|cumprimentos|"
    r"pozdrawiam(?: serdecznie)?|z powa[żz]aniem|dzi[ęe]kuj[ęe]|serdecznie)[\s,.!]*$",
    re.I,
)

# The narrow form (with "my") that may open a signature block on its own; the broad one
# ("Sent from Yahoo Mail…", "Sent with Sparrow") only ends a reply.
_DEVICE_SIGNATURE = re.compile(
    r"^\s*(?:Sent\s+from\s+my|Trimis\s+de\s+pe|Verzonden\s+vanaf\s+mijn|Verstuurd\s+vanaf\s+mijn|"
    r"Enviado\s+do\s+meu|Wys[łl]ane\s+z\s+mojego|Wys[łl]ano\s+z\s+mojego|Gesendet\s+von\s+meinem)"
    r"(?:\s+[^\s,;.!?]+){1,3}\s*$",
    re.I,
)
# The target html_text writes after a link's words: "Outlook for Android (https://…)".
_LINK_TARGET = re.compile(r"\s*\((?:https?://|mailto:)[^()\s]{1,300}\)")
_SENT_FROM = re.compile(rf"^\s*(?:{_SENT_FROM_PHRASES})(?:\s+[^\s,;.!?]+){{1,5}}\s*$", re.I)


def is_quoted(line: str) -> bool:
    """A line of quoted text (``> …``)."""
    return line.startswith(">")


@lru_cache(maxsize=4096)  # a line is tested while joining wrapped lines and again after
def is_attribution(line: str) -> bool:
    """An attribution line in a language we know: "On 1 Mar 2011, Bob <b@x> wrote:"."""
    text = line.strip()
    if not text.endswith(":") or len(text) > _LONGEST_ATTRIBUTION:
        return False
    tail = max(0, len(text) - _CLOSING_WORDS)
    lowered = text.lower()
    has_verb = any(verb in lowered for verb in _VERBS_BEFORE_NAME) and bool(
        _ATTRIBUTION_VERB.search(text)
    )
    if _ATTRIBUTION_OPENING.match(text) is not None:
        return _EVIDENCE.search(text) is not None
    if has_verb or _ATTRIBUTION_END.search(text, tail):
        return _EVIDENCE.search(text) is not None or _ATTRIBUTION_START.match(text) is not None
    return _FOREIGN_ATTRIBUTION.match(text) is not None


@lru_cache(maxsize=4096)
def looks_like_attribution(line: str) -> bool:
    """A line shaped like an attribution (date or address, ends with a colon), any language."""
    text = line.strip()
    if not text.endswith(":") or len(text) > _LONGEST_ATTRIBUTION:
        return False
    return _has_address(text) or _DATE_OR_TIME.search(text) is not None


def _has_address(text: str) -> bool:
    if "@" not in text:
        return False
    return any(
        _ADDRESS.fullmatch(token)
        for token in _TOKEN_SEPARATORS.split(text)
        if "@" in token and len(token) <= 320
    )


def starts_with_closer(text: str) -> bool:
    """Whether an attribution candidate starts with its own verb ("wrote:" wrapped alone)."""
    return _CLOSER_FIRST.match(text) is not None


def field_name(line: str) -> tuple[str, bool] | None:
    """The header field a line of a quoted header block starts with, and if it is From-like."""
    match = _FIELD_LINE.match(line)
    if match is None:
        return None
    if match["from"]:
        return match["from"].lower(), True
    return match["other"].lower(), False


def is_history_separator(line: str) -> bool:
    """A history separator: "-----Original Message-----", a forward rule, "Begin forwarded…"."""
    return len(line) < 120 and _HISTORY_SEPARATOR.match(line) is not None


def is_strong_delimiter(line: str) -> bool:
    """A line of dashes or underscores only: "-- ", "__", "----------------"."""
    return _STRONG_DELIMITER.match(line) is not None


def is_weak_delimiter(line: str) -> bool:
    """A weak signature start ("-Name", "-- text"): one only when what it opens is short."""
    return _WEAK_DELIMITER.match(line) is not None


def is_long_separator(line: str) -> bool:
    """A rule of seven or more dashes or underscores, as Outlook draws above quoted mail."""
    return _LONG_SEPARATOR.match(line) is not None


def is_separator(line: str) -> bool:
    """A line of rule characters only (dashes, underscores, stars, equals signs)."""
    return _SEPARATOR.match(line) is not None


def is_device_signature(line: str) -> bool:
    """A phone's signature with a possessive: "Sent from my iPhone" and its translations."""
    return len(line) < 100 and _DEVICE_SIGNATURE.match(line) is not None


def is_valediction(line: str) -> bool:
    """A closing line on its own: "Thanks,", "Cu stimă,", "Met vriendelijke groet"."""
    text = line.strip()
    return len(text) <= 40 and (
        _VALEDICTION.match(text) is not None or (text.endswith(",") and len(text.split()) <= 4)
    )


def is_sent_from(line: str) -> bool:
    """A mobile-client signature: "Sent from my iPhone", "Trimis de pe iPhone-ul meu",
    also as an HTML body renders it ("Get Outlook for Android (https://aka.ms/…)",
    "Sent with Proton Mail (https://proton.me/) secure email.")."""
    if len(line) >= 160:
        return False
    bare = _LINK_TARGET.sub("", line).rstrip().removesuffix(".")
    return len(bare) < 100 and _SENT_FROM.match(bare) is not None
