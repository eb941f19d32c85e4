"""The embedded default corpus: stdlib docstrings read with ast, cached as JSONL."""

from __future__ import annotations

import ast
import difflib
import json
import sys
import sysconfig
from pathlib import Path

import pytest

from engine.data import builtin
from engine.data.builtin import MIN_CHARS, python_docs_documents


@pytest.fixture(scope="module")
def cold_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    cache = tmp_path_factory.mktemp("atelier-cache")
    return cache, python_docs_documents(cache)


def test_corpus_is_large_real_prose_with_sources(cold_cache):
    _, docs = cold_cache
    size = sum(len(d["text"].encode("utf-8")) for d in docs)
    assert size > 500_000
    assert all(set(d) == {"text", "source"} for d in docs)
    assert all(len(d["text"]) >= MIN_CHARS and d["text"] == d["text"].strip() for d in docs)
    sources = {d["source"] for d in docs}
    assert "json" in sources  # a module docstring
    assert "json.decoder:JSONDecoder" in sources  # a class docstring
    assert "json:dumps" in sources  # a function docstring


def test_docstrings_are_dedented():
    docs = python_docs_documents()
    text = next(d["text"] for d in docs if d["source"] == "json:dumps")
    assert text.startswith("Serialize ``obj`` to a JSON formatted ``str``.")
    # cleandoc removes the common indentation of the continuation lines.
    assert "\n    " not in text.split("\n\n")[0]


def test_keeps_real_near_duplicates():
    by_source = {d["source"]: d["text"] for d in python_docs_documents()}
    assert any(s.startswith("_pydecimal:") for s in by_source)
    assert "_pydecimal:Decimal" in by_source
    # decimal.py only carries docstrings from Python 3.13 on; before that they live in C (_decimal).
    decimal_py = Path(sysconfig.get_paths()["stdlib"]) / "decimal.py"
    if ast.get_docstring(ast.parse(decimal_py.read_text(encoding="utf-8"))):
        assert any(s == "decimal" or s.startswith("decimal:") for s in by_source)
    # abc.ABCMeta and its pure-Python twin _py_abc.ABCMeta: the same prose, twice.
    ratio = difflib.SequenceMatcher(None, by_source["abc:ABCMeta"], by_source["_py_abc:ABCMeta"]).ratio()
    assert ratio > 0.8


def test_skips_tests_and_site_packages():
    for doc in python_docs_documents():
        module = doc["source"].split(":")[0].split(".")
        assert not {"test", "tests", "idle_test", "site-packages"} & set(module), doc["source"]


def test_cache_is_jsonl_keyed_by_python_version_and_reused(cold_cache):
    cache, docs = cold_cache
    files = list(cache.glob("*.jsonl"))
    assert len(files) == 1
    assert ".".join(map(str, sys.version_info[:3])) in files[0].name
    assert not list(cache.glob("*.tmp"))  # the temp file was renamed into place
    lines = files[0].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == docs
    # A cached read returns what the cache holds, without parsing the stdlib again.
    files[0].write_text(json.dumps({"text": "from the cache " * 5, "source": "x"}) + "\n", encoding="utf-8")
    assert python_docs_documents(cache) == [{"text": "from the cache " * 5, "source": "x"}]


def test_cache_dir_comes_from_atelier_cache_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    fake = [{"text": "A docstring long enough to keep in the corpus.", "source": "m:f"}]
    # Stand in for the slow stdlib parse: this test is about the cache file, not the parsing.
    monkeypatch.setattr(builtin, "_stdlib_docstrings", lambda stdlib: iter(fake))
    monkeypatch.setenv("ATELIER_CACHE", str(tmp_path))
    assert python_docs_documents() == fake
    cache_file = next(tmp_path.glob("*.jsonl"))
    cache_file.write_text("{not json\n", encoding="utf-8")
    assert python_docs_documents() == fake
    assert json.loads(cache_file.read_text(encoding="utf-8")) == fake[0]
