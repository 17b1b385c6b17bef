"""The GGUF file in the model cache: kept verified beside the torch weights, fetched alone.

No download: the fetch is replaced by one that writes a small fake GGUF file, counted.
"""

import pytest

FAKE_GGUF = b"GGUF" + bytes(range(256)) * 4


@pytest.fixture
def gguf_alias(monkeypatch, tmp_path):
    """An alias sharing the folder ``tiny-base``, whose 'download' writes FAKE_GGUF, counted."""
    import hashlib

    from sampler.sources import gguf_cache, model_cache

    fetches = []

    def fake_fetch(spec, work, progress):
        fetches.append(spec.alias)
        (work / model_cache.GGUF_NAME).write_bytes(FAKE_GGUF)
        return work / model_cache.GGUF_NAME

    pin = hashlib.sha256(FAKE_GGUF).hexdigest()
    spec = model_cache.ModelAlias(
        "tiny-gguf", "test", "none==0", "none", pin, 1, backend="llama.cpp", folder="tiny-base"
    )
    monkeypatch.setitem(model_cache.ALIASES, "tiny-gguf", spec)
    monkeypatch.setattr(gguf_cache, "fetch_gguf", fake_fetch)
    return tmp_path / "cache", fetches


def _ensure(root):
    from sampler.sources.gguf_cache import ensure_gguf

    return ensure_gguf("tiny-gguf", root, lambda message: None)


def test_a_cache_without_the_gguf_file_gets_it_beside_the_others(gguf_alias):
    from sampler.sources.model_cache import cached_state, verify_folder, write_manifest

    root, fetches = gguf_alias
    folder = root / "models" / "tiny-base"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    write_manifest(folder, {"alias": "tiny-base"})  # a cache built before the GGUF was kept
    path, fingerprint = _ensure(root)
    assert path == folder / "model.gguf" and path.read_bytes() == FAKE_GGUF
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    assert verify_folder(folder) is None  # listed in the manifest, checked with the rest
    assert _ensure(root) == (path, fingerprint) and fetches == ["tiny-gguf"]
    assert cached_state("tiny-gguf", root) == ("ready", len(FAKE_GGUF))


def test_a_damaged_gguf_file_is_fetched_again(gguf_alias):
    root, fetches = gguf_alias
    path, _ = _ensure(root)
    path.write_bytes(FAKE_GGUF[:-1] + b"!")  # same size, other content
    assert _ensure(root)[0].read_bytes() == FAKE_GGUF
    assert fetches == ["tiny-gguf", "tiny-gguf"]


def test_an_empty_cache_gets_the_gguf_file_alone(gguf_alias):
    from sampler.sources.model_cache import verify_folder

    root, _ = gguf_alias
    path, _ = _ensure(root)
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json", "model.gguf"]
    # The torch backend sees a folder it must build (and reuses the verified file then).
    assert "only the GGUF file" in verify_folder(path.parent)


def test_the_torch_build_reuses_a_cached_gguf_file(gguf_alias, monkeypatch):
    from sampler.sources import model_cache

    root, fetches = gguf_alias
    torch_alias = model_cache.ModelAlias(
        "tiny-base", "test", "none==0", "none", model_cache.ALIASES["tiny-gguf"].gguf_sha256, 1
    )
    monkeypatch.setitem(model_cache.ALIASES, "tiny-base", torch_alias)
    _ensure(root)  # an empty cache: the GGUF file alone

    def fake_build(spec, work, progress):  # the real one converts what it finds in work
        assert (work / "model.gguf").read_bytes() == FAKE_GGUF
        output = work / "model"
        output.mkdir()
        (work / "model.gguf").replace(output / "model.gguf")
        (output / "model.safetensors").write_bytes(b"weights")
        model_cache.write_manifest(output, {"alias": spec.alias})
        return output

    monkeypatch.setattr(model_cache, "_build", fake_build)
    folder = model_cache.ensure_model("tiny-base", root, lambda message: None)
    assert model_cache.verify_folder(folder) is None
    assert fetches == ["tiny-gguf"]  # downloaded once, for llama.cpp
    assert _ensure(root)[0] == folder / "model.gguf" and fetches == ["tiny-gguf"]

