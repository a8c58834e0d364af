"""The triage caches: keys change with what the audit depends on, writes are atomic."""

from __future__ import annotations

from auditor import cache


def test_result_key_depends_on_blobs_folder_and_options():
    base = cache.result_key("records/t/A", [("train_gpt.py", "a" * 40)], {"select": None})
    assert base == cache.result_key("records/t/A", [("train_gpt.py", "a" * 40)], {"select": None})
    assert base != cache.result_key("records/t/A", [("train_gpt.py", "b" * 40)], {"select": None})
    assert base != cache.result_key("records/t/B", [("train_gpt.py", "a" * 40)], {"select": None})
    assert base != cache.result_key("records/t/A", [("train_gpt.py", "a" * 40)], {"select": ["PG3"]})
    assert len(cache.code_digest()) == 24


def test_result_cache_roundtrip_and_disabled(tmp_path):
    results = cache.ResultCache(tmp_path)
    assert results.get("ab" * 32) is None
    results.put("ab" * 32, {"verdict": "clean"})
    assert results.get("ab" * 32) == {"verdict": "clean"}
    assert not list(tmp_path.rglob(".tmp-*"))
    off = cache.ResultCache(None)
    off.put("cd" * 32, {"x": 1})
    assert off.get("cd" * 32) is None


def test_pull_cache_is_per_main_commit(tmp_path):
    pulls = cache.PullCache(tmp_path, "m1")
    pulls.put(5, {"head": "h5", "folders": []})
    pulls.save()
    assert cache.PullCache(tmp_path, "m1").get(5, "h5") == {"head": "h5", "folders": []}
    assert cache.PullCache(tmp_path, "m1").get(5, "other-head") is None
    assert cache.PullCache(tmp_path, "m2").get(5, "h5") is None


def test_default_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PGOLF_AUDIT_CACHE", str(tmp_path / "c"))
    assert cache.default_dir() == tmp_path / "c"
    monkeypatch.delenv("PGOLF_AUDIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache.default_dir() == tmp_path / "x" / "pgolf-audit"
