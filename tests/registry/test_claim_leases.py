"""Upload claims are leases owned by a token (issue 14, finding 3), on both databases."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crucible_model_registry import Registry, ValidationError
from crucible_model_registry.store import artifacts
from crucible_model_registry.store.engine import Database
from crucible_model_registry.store.tables import PENDING_UPLOADS

MODEL = "leases"
REMOTE = f"{MODEL}/1/checkpoint/w.bin"


def _db(registry: Registry) -> Database:
    return Database(registry.engine)


@pytest.fixture
def version_id(registry: Registry) -> int:
    return registry.register(
        model_name=MODEL, version="1", recipe="sft", base_model="b", training_config={}
    ).id


def _claim(registry: Registry, version_id: int, lease: timedelta) -> artifacts.UploadClaim:
    return artifacts.claim_upload(
        _db(registry), version_id, "local", REMOTE, ref=f"{MODEL}@1", lease=lease
    )


def _claim_count(registry: Registry) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(PENDING_UPLOADS)).scalar_one())


def test_a_claim_whose_lease_ran_out_is_taken_over(
    registry: Registry, version_id: int, tmp_path: Path
):
    _claim(registry, version_id, timedelta(milliseconds=200))  # its owner never renews
    time.sleep(0.4)
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights")

    artifact = registry.upload_artifact(f"{MODEL}@1", "checkpoint", weights)

    assert registry.verify_artifact(artifact.id)
    assert _claim_count(registry) == 0


def test_a_renewed_claim_outlives_its_lease(registry: Registry, version_id: int):
    claim = _claim(registry, version_id, timedelta(milliseconds=400))
    with artifacts.keep_claim_alive(_db(registry), claim):
        time.sleep(1.2)  # three leases long
        with pytest.raises(ValidationError) as caught:
            _claim(registry, version_id, timedelta(seconds=60))
        assert set(caught.value.errors) == {"path"}
        assert artifacts.holds_claim(_db(registry), claim)
    assert artifacts.release_upload(_db(registry), claim)
    assert _claim_count(registry) == 0


def test_only_the_token_holder_releases_or_renews_a_claim(registry: Registry, version_id: int):
    claim = _claim(registry, version_id, timedelta(seconds=60))
    impostor = artifacts.UploadClaim(claim.backend, claim.remote, "0" * 32)

    assert not artifacts.release_upload(_db(registry), impostor)
    assert not artifacts.renew_claim(_db(registry), impostor)
    assert _claim_count(registry) == 1
    assert artifacts.holds_claim(_db(registry), claim)
    assert "0" * 32 not in repr(impostor)
    assert claim.token not in repr(claim)


def test_an_expired_lease_is_never_renewed(registry: Registry, version_id: int):
    claim = _claim(registry, version_id, timedelta(milliseconds=100))
    time.sleep(0.2)

    assert not artifacts.renew_claim(_db(registry), claim)
    assert not artifacts.holds_claim(_db(registry), claim)
