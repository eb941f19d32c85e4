"""PII redaction: each kind is replaced where it is real, and left alone where it only looks alike
(numbers failing checksums, versions, dates, times, code)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cleaning.pii import Pii
from engine.specs.clean import PiiStep

PII = Pii(PiiStep())
TOKENS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>", "credit_card": "<CREDIT_CARD>",
          "iban": "<IBAN>", "secret": "<SECRET>"}

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq98\nw7xQ2kq+3/Zr==\n-----END RSA PRIVATE KEY-----"

POSITIVES = {
    "email": ["jane.doe@example.org", "first+tag@sub.example.co.uk", "x_y-z@my-domain.io", "ADMIN@EXAMPLE.COM"],
    "phone": ["+44 20 7946 0958", "(555) 123-4567", "555-123-4567", "555.123.4567", "+1 (555) 123-4567",
              "+49 30 901820", "+33 6 12 34 56 78", "+14155552671", "020 7946 0958", "06 12 34 56 78"],
    "ip": ["192.168.1.20", "8.8.8.8", "203.0.113.5", "fe80::1", "2001:db8::8a2e:370:7334",
           "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::ffff:192.0.2.128"],
    "credit_card": ["4111 1111 1111 1111", "4012888888881881", "5555-5555-5555-4444", "2223003122003222",
                    "3782 822463 10005", "6011111111111117", "3530111333300000", "30569309025904"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR14 2004 1010 0505 0001 3M02 606",
             "NL91ABNA0417164300"],
    "secret": ["AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "ghp_" + "a1B2" * 9, "gho_" + "Z" * 36,
               "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
               "xoxb-123456789012-1234567890123-abcdefghijklmnop", "sk-proj-abc123def456ghi789jkl012mno",
               "sk-" + "A1b2C3d4" * 6, "hf_" + "aBcDeFgHiJ" * 3 + "kLmN", "AIzaSyD-1234567890abcdefghijklmnopqrstu",
               "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "rk_live_4eC39HqLyjWDarjtT1zdp7dc", JWT, PEM],
}

NEGATIVES = {
    "email": ["user@localhost", "icon@2x.png", "@app.route('/')", "a @ b.com", "name@", "@example.com"],
    "phone": ["2021-03-04", "03/04/2021", "04.03.2021", "1234567890", "in 1999", "version 1.2.3", "pi is 3.14159",
              "up +3.5%", "at 12:30:45", "ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2", "from 1990-2000",
              "rows 100 200 3000", "price 1,234,567.89", "2024-01-15T12:30:45Z"],
    "ip": ["256.1.1.1", "1.2.3.4.5", "version 1.2.3.4", "Version: 1.2.3.4", "v1.2.3.4", "127.0.0.1", "0.0.0.0", "3.14",
           "std::vector<int>", "Foo::Bar::baz()", "a::b", "at 12:30:45", "::1", "x :: Int",
           "MAC 00:1A:2B:3C:4D:5E", "uuid 123e4567-e89b-12d3-a456-426614174000"],
    "credit_card": ["4111 1111 1111 1112", "1234567812345670", "Order 9876543210123", "12345", "4111 1111",
                    "4111111111111111111111"],
    "iban": ["DE89 3704 0044 0532 0130 01", "GB82WEST12345698765433", "AB12 CDEF GHIJ KLMN", "DE89"],
    "secret": ["sk-learn", "task-oriented-design-patterns-2024", "hf_transfer", "AKIA", "ghp_short", "eyJhbGci",
               "password: str", "password = get_password()", "pwd = os.getcwd()", 'password = ""',
               "the password is secret", "token = tokenizer.encode(x)", "api_key = YOUR_API_KEY",
               "-----BEGIN PUBLIC KEY-----"],
}


def cases(table: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(kind, text) for kind, texts in table.items() for text in texts]


@pytest.mark.parametrize("kind, value", cases(POSITIVES))
def test_each_kind_is_redacted_in_running_text(kind, value):
    result = PII(f"Details: {value}. Thanks!")
    assert result.text == f"Details: {TOKENS[kind]}. Thanks!"
    assert result.changes == {f"pii.{kind}": 1}


@pytest.mark.parametrize("kind, text", cases(NEGATIVES))
def test_lookalikes_are_left_alone(kind, text):
    assert PII(f"See {text} here.").text == f"See {text} here."


@pytest.mark.parametrize("assignment, redacted", [
    ('password = "hunter22"', 'password = "<SECRET>"'),
    ("DB_PASSWORD=abc123def", "DB_PASSWORD=<SECRET>"),
    ("api_key: abc123def456", "api_key: <SECRET>"),
    ('{"client_secret": "s3cr3t!value"}', '{"client_secret": "<SECRET>"}'),
    ("auth_token='xyz.123.abc'", "auth_token='<SECRET>'"),
    ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789", "Authorization: Bearer <SECRET>"),
])
def test_assigned_secrets_lose_only_their_value(assignment, redacted):
    result = PII(assignment)
    assert result.text == redacted and result.changes == {"pii.secret": 1}


def test_only_a_version_word_right_before_a_dotted_quad_keeps_it():
    assert PII("on dev 10.0.0.7 and build 1.2.3.4").text == "on dev <IP_ADDRESS> and build 1.2.3.4"


def test_a_truncated_private_key_is_redacted_up_to_its_last_base64_line():
    text = "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n\nThe end."
    assert PII(text).text == "key:\n<SECRET>\n\nThe end."


def test_a_document_with_several_kinds_is_counted_per_kind():
    text = ("Write to jane.doe@example.org or bob@example.com, call +44 20 7946 0958, pay 4111 1111 1111 1111 "
            "or DE89 3704 0044 0532 0130 00 from 203.0.113.5 with key AKIAIOSFODNN7EXAMPLE.")
    result = PII(text)
    assert result.text == ("Write to <EMAIL> or <EMAIL>, call <PHONE>, pay <CREDIT_CARD> or <IBAN> from "
                           "<IP_ADDRESS> with key <SECRET>.")
    assert result.changes == {"pii.email": 2, "pii.phone": 1, "pii.credit_card": 1, "pii.iban": 1, "pii.ip": 1,
                              "pii.secret": 1}


def test_only_the_chosen_kinds_are_redacted_with_the_chosen_tokens():
    step = Pii(PiiStep(redact=["email", "ip"], tokens={"email": "[mail]", "ip": "[ip]"}))
    result = step("mail a@example.com from 10.1.2.3 or call +44 20 7946 0958")
    assert result.text == "mail [mail] from [ip] or call +44 20 7946 0958"
    assert result.changes == {"pii.email": 1, "pii.ip": 1}
    assert Pii(PiiStep(redact=[]))("a@example.com").text == "a@example.com"


def test_redacting_twice_changes_nothing_more():
    once = PII('password = "hunter22", mail a@example.com').text
    assert PII(once).text == once and PII(once).changes == {}


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.one_of(st.sampled_from([v for vs in POSITIVES.values() for v in vs] +
                                               [v for vs in NEGATIVES.values() for v in vs] + [" ", "\n", ":", "."]),
                               st.text(max_size=6)), max_size=20).map("".join))
def test_pii_never_removes_a_document_or_fails(text):
    result = PII(text)
    assert result.text is not None and all(n > 0 for n in result.changes.values())
