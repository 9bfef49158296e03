"""Jobs hash their inputs with the job's cancel token, so that cancelling during the hash of a large file stops
within one 1 MiB block (issue #17: a cancelled job must not first read and hash whole files)."""

from __future__ import annotations

import pytest

from unmix.jobs import Cancelled, CancelToken


def _token_spy(monkeypatch, module):
    """Replace ``module.file_sha256`` by the real one wrapped to record the token each call gets."""
    from unmix import hashing

    seen = []

    def spy(path, token=hashing.NO_CANCEL):
        seen.append(token)
        return hashing.file_sha256(path, token)

    monkeypatch.setattr(module, "file_sha256", spy)
    return seen


def _big(tmp_path):
    path = tmp_path / "big.mseed"
    path.write_bytes(b"\0" * (3 << 20))
    return path


def test_feature_store_hashes_inputs_with_the_job_token(tmp_path, monkeypatch):
    from unmix.features import store

    seen = _token_spy(monkeypatch, store)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        store.build_store([_big(tmp_path)], tmp_path / "f.h5", token=token)
    assert seen and seen[0] is token  # the hash itself stopped, not a later check


def test_export_hashes_each_input_with_the_job_token(tmp_path, monkeypatch):
    from unmix import export

    seen = _token_spy(monkeypatch, export)
    token = CancelToken()
    token.cancel()
    plan = export.ExportPlan(out_dir=str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    with pytest.raises(Cancelled):
        export.process_file(_big(tmp_path), "big", plan, token=token)
    assert seen and seen[0] is token
