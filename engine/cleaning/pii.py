"""PII: replace e-mail addresses, phone numbers, IP addresses, card numbers, IBANs and secrets with
placeholder tokens. Never removes a document.

Regular expressions find candidates; checksums and parsers decide (stdnum's Luhn and IBAN checks,
the ipaddress module), which keeps numbers, dates, versions and code from being redacted. Our own
patterns because no light library covers these kinds: Presidio needs a spaCy model at run time,
and the regex scrubbers each cover only some of them (few know IBANs, IPv6 or API keys).

Kinds run in a fixed order: secrets first (a token or key can contain an e-mail-like or
number-like run), phone numbers last (the loosest pattern, after the IPs and card numbers it could
otherwise take a piece of).

Decisions, tested in tests/engine/cleaning/test_pii.py:
- e-mail needs a dotted domain with a letter TLD: `user@localhost` and `logo@2x.png` are kept;
- loopback and unspecified IPs (127.0.0.1, ::1, 0.0.0.0, ::) identify nobody and are kept, as is a
  dotted quad written as a version (`version 1.2.3.4`, `v1.2.3.4`);
- an IPv6 address needs a group of 3+ hex digits, so C++'s `A::B` and times like 12:30:45 are kept;
- a card number needs the Luhn check and a network's prefix and length (an 18-digit run that
  passes Luhn and starts with 37 is not an Amex card);
- phone numbers need separators or a leading +, so plain numbers, years and ids are kept; dates
  shaped like numbers (03-04-2021) are kept.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from stdnum import iban, luhn

from engine.cleaning.steps import StepResult
from engine.specs.clean import PII_KINDS, PiiStep

# Each pattern starts with a character class and checks the character before it with a lookbehind
# placed after that first character: Python's re then skips ahead to candidate characters instead
# of trying every position (2.5-3x faster).
_EMAIL = re.compile(
    r"[A-Za-z0-9](?<![\w.%+-][A-Za-z0-9])[A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"(?!(?:png|jpe?g|gif|svg|webp|bmp|ico)\b)[A-Za-z]{2,24}(?![\w-])")

_SECRET_PATTERNS = (
    # a key block (an RSA-8192 one is under 7 kB), or what is left of a truncated one
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.{0,20000}?-----END [A-Z0-9 ]*PRIVATE KEY-----"
    r"|(?:\s*\n[A-Za-z0-9+/=]{16,})*)",
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",                        # AWS access key ids
    r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b",                # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
    r"\bxox[abprs]-[A-Za-z0-9-]{10,250}",                              # Slack
    r"\bsk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}(?![\w-])",           # OpenAI-style (sk-proj-... too)
    r"\bhf_[A-Za-z0-9]{30,}\b",                                        # Hugging Face
    r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])",                               # Google API keys
    r"\b(?:sk|rk)_live_[0-9A-Za-z]{16,}\b",                            # Stripe
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",      # JWT: base64url JSON header
    r"(?<=\bBearer )[A-Za-z0-9._~+/-]{20,}=*",                         # HTTP bearer tokens
)
_SECRET = re.compile("|".join(f"(?:{p})" for p in _SECRET_PATTERNS), re.DOTALL)
_SECRET_MARKERS = ("PRIVATE KEY", "AKIA", "ASIA", "ABIA", "ACCA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
                   "xox", "sk-", "hf_", "AIza", "_live_", "eyJ", "Bearer ")

# `password = "..."`, `"api_key": "..."`, `DB_PASSWORD=...`: only the value is replaced. The match
# starts at the keyword (a prefix such as `DB_` needs no matching), which keeps the scan fast.
_SECRET_KEYS = (r"passw(?:or)?d|pwd|secret|(?:api|access|private)[_-]?key"
                r"|(?:access|auth|api|bearer|refresh|secret|session)[_-]?token")
_ASSIGNED_SECRET = re.compile(
    rf"""(?ix)
    (?P<key>(?:{_SECRET_KEYS})[\w-]*)
    (?P<sep>["']?[ \t]*[:=][ \t]*)
    (?:(?P<quote>["'])(?P<quoted>[^"'\n]{{3,}}?)(?P=quote)|(?P<bare>[^\s"'`,;()\[\]{{}}<>]{{6,}}))""")
# A case-sensitive scan of the lowercased text: four times faster than the case-blind pattern.
_ASSIGNED_HINT = re.compile(r"""(?:passw|pwd|secret|key|token)[\w-]*["']?[ \t]*[:=]""")
# An unquoted value without digits or symbols is more likely code (`password = get_password`,
# `api_key: str`) than a secret.
_NOT_A_VALUE = re.compile(r"[A-Za-z_][A-Za-z_.]*")

_HAS_DIGITS = re.compile(r"\d")
_IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"\d(?<![\w.-]\d)(?:[ -]?\d){12,18}(?![\w-]|\.\d)")
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?!\w|\.\d)")
_VERSION_BEFORE = re.compile(r"\b(?:version|release|build|ver|v)\.?[\s:=]*$", re.IGNORECASE)
_IPV6 = re.compile(
    r"""(?x)[0-9A-Fa-f:](?<![\w:.][0-9A-Fa-f:])
    (?: (?<=:)[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){1,6}                    # ::1, ::ffff:1.2.3.4
      | (?<=[0-9A-Fa-f])[0-9A-Fa-f]{0,3}(?::[0-9A-Fa-f]{0,4}){2,7}         # fe80::1, 2001:db8:...
    )(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\w)""")
_HEX_GROUP3 = re.compile(r"[0-9A-Fa-f]{3}")
_PHONE = re.compile(
    r"""(?x)[+(\d](?<![\w+.\-/][+(\d])(?<!\d[ .\-][+(\d])   # not glued to a word, nor the tail of digit groups
    (?: (?<=\+)\d{1,3}(?:[ .\-]?\(\d{1,4}\))?(?:[ .\-]?\d{1,5}){2,6}     # +44 20 7946 0958, +1 (555) 123-4567
      | (?<=\()\d{2,5}\)[ .\-]?\d{2,5}(?:[ .\-]\d{2,5}){1,3}              # (555) 123-4567, (020) 7946 0958
      | (?<=0)\d{1,4}(?:[ .\-/]\d{2,5}){2,4}                             # 020 7946 0958, 06 12 34 56 78
      | (?<=[2-9])\d{2}(?P<sep>[ .\-])\d{3}(?P=sep)\d{4}                  # 555-123-4567 (NANP area codes)
    )(?![\w\-]|[.,]\d)""")
_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")

# Issuer prefixes (IIN ranges) and number lengths of the major card networks: a Luhn-valid number
# outside them is more likely an id than a card.
def _prefixes(*items: str | range) -> tuple[str, ...]:
    return tuple(p for item in items for p in ([item] if isinstance(item, str) else map(str, item)))


_CARD_NETWORKS = (
    (_prefixes("4"), (13, 16, 19)),                                          # Visa
    (_prefixes(range(51, 56), range(2221, 2721)), (16,)),                    # Mastercard
    (_prefixes("34", "37"), (15,)),                                          # American Express
    (_prefixes("6011", "65", range(644, 650)), range(16, 20)),               # Discover
    (_prefixes(range(300, 306), "36", "38", "39"), range(14, 20)),           # Diners Club
    (_prefixes(range(3528, 3590)), range(16, 20)),                           # JCB
    (_prefixes("62"), range(16, 20)),                                        # UnionPay
    (_prefixes("50", "56", "57", "58", "6"), range(13, 20)),                 # Maestro
)


def _whole(match: re.Match) -> int:
    return len(match.group())


def _card(match: re.Match) -> int:
    digits = re.sub(r"\D", "", match.group())
    issued = any(digits.startswith(prefixes) and len(digits) in lengths for prefixes, lengths in _CARD_NETWORKS)
    return len(match.group()) if issued and luhn.is_valid(digits) else 0


def _iban(match: re.Match) -> int:
    # Written in groups, the pattern can run on into a following group of capitals or digits:
    # drop trailing groups until the checksum holds.
    candidate = match.group()
    while len(candidate) >= 15:
        if iban.is_valid(candidate):
            return len(candidate)
        if " " not in candidate:
            break
        candidate = candidate.rsplit(" ", 1)[0]
    return 0


def _ipv4(match: re.Match) -> int:
    if _VERSION_BEFORE.search(match.string[max(0, match.start() - 16):match.start()]):
        return 0
    return _whole(match) if _identifying_ip(ipaddress.IPv4Address, match.group()) else 0


def _ipv6(match: re.Match) -> int:
    candidate = match.group()
    valid = _HEX_GROUP3.search(candidate) and _identifying_ip(ipaddress.IPv6Address, candidate)
    return len(candidate) if valid else 0


def _identifying_ip(kind: type, candidate: str) -> bool:
    try:
        address = kind(candidate)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


def _phone(match: re.Match) -> int:
    text = match.group()
    digits = sum(ch.isdigit() for ch in text)
    if text.startswith("+"):
        valid = 8 <= digits <= 15
    else:
        valid = 9 <= digits <= 15 and not _DATE.fullmatch(text)
    return len(text) if valid else 0


# kind -> (prefilter, pattern, how many characters of a match to replace), in the order they run;
# the prefilter is a cheap test that the text can hold the kind at all.
_DETECTORS: dict[str, tuple[Callable[[str], bool], re.Pattern, Callable[[re.Match], int]]] = {
    "secret": (lambda text: any(marker in text for marker in _SECRET_MARKERS), _SECRET, _whole),
    "email": (lambda text: "@" in text, _EMAIL, _whole),
    "iban": (_HAS_DIGITS.search, _IBAN, _iban),
    "credit_card": (_HAS_DIGITS.search, _CARD, _card),
    "ipv6": (lambda text: text.count(":") >= 2, _IPV6, _ipv6),
    "ipv4": (lambda text: text.count(".") >= 3, _IPV4, _ipv4),
    "phone": (_HAS_DIGITS.search, _PHONE, _phone),
}
_KIND = {"ipv6": "ip", "ipv4": "ip"}


class Pii:
    """Replaces each kind in `spec.redact` by its token; counts go to `pii.<kind>`."""

    def __init__(self, spec: PiiStep):
        self.tokens = {kind: getattr(spec.tokens, kind) for kind in PII_KINDS}
        self.detectors = [name for name in _DETECTORS if _KIND.get(name, name) in spec.redact]

    def __call__(self, text: str) -> StepResult:
        changes: dict[str, int] = {}
        for name in self.detectors:
            kind = _KIND.get(name, name)
            if kind == "secret" and _ASSIGNED_HINT.search(text.lower()):
                text = self._redact_assigned(text, changes)
            hint, pattern, span = _DETECTORS[name]
            if hint(text):
                text = self._redact(text, pattern, span, kind, changes)
        return StepResult(text, changes=changes)

    def _redact(self, text: str, pattern: re.Pattern, span: Callable[[re.Match], int], kind: str,
                changes: dict[str, int]) -> str:
        found = 0

        def replace(match: re.Match) -> str:
            nonlocal found
            n = span(match)
            if not n:
                return match.group()
            found += 1
            return self.tokens[kind] + match.group()[n:]

        text = pattern.sub(replace, text)
        if found:
            changes[f"pii.{kind}"] = changes.get(f"pii.{kind}", 0) + found
        return text

    def _redact_assigned(self, text: str, changes: dict[str, int]) -> str:
        found = 0
        token = self.tokens["secret"]

        def replace(match: re.Match) -> str:
            nonlocal found
            quote, value = match.group("quote") or "", match.group("quoted") or match.group("bare")
            if value == token or (not quote and _NOT_A_VALUE.fullmatch(value)):
                return match.group()
            found += 1
            return f"{match.group('key')}{match.group('sep')}{quote}{token}{quote}"

        text = _ASSIGNED_SECRET.sub(replace, text)
        if found:
            changes["pii.secret"] = changes.get("pii.secret", 0) + found
        return text
