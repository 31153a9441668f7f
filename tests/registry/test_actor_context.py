"""acting_as(actor): who the stage and alias histories record, per thread and per block."""

from __future__ import annotations

import threading

import pytest

import crucible_model_registry as cmr
from crucible_model_registry import Registry, ValidationError

# At a server the actor is the token's principal, whatever a client's acting_as says
# (tests/server/test_access.py checks that).
pytestmark = pytest.mark.in_process("the server records the token's principal as the actor")


def _version(registry: Registry, i: int) -> cmr.ModelVersion:
    return registry.register(
        model_name="actors", recipe="sft", base_model="org/base", training_config={"i": i}
    )


def test_outside_any_block_the_actor_is_cmr_actor(registry: Registry):
    v = _version(registry, 0)
    registry.promote(v, "staging")
    assert [t.actor for t in registry.stage_history(v)] == ["tester", "tester"]


def test_inside_a_block_the_actor_is_its_name_and_blocks_nest(registry: Registry):
    v = _version(registry, 0)
    with cmr.acting_as("alice"):
        registry.promote(v, "staging")
        with cmr.acting_as("bob"):
            registry.set_alias(v, "champion")
        registry.delete_alias("actors", "champion")
    registry.promote(v, "production")
    assert [t.actor for t in registry.stage_history(v)] == ["tester", "alice", "tester"]
    assert [c.actor for c in registry.alias_history("actors")] == ["bob", "alice"]


def test_concurrent_threads_record_their_own_actor(registry: Registry):
    versions = [_version(registry, i) for i in range(8)]
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def promote_as(i: int) -> None:
        try:
            with cmr.acting_as(f"worker-{i}"):
                barrier.wait()
                registry.promote(versions[i], "staging")
                registry.set_alias(versions[i], f"pick-{i}")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=promote_as, args=(i,)) for i in range(len(versions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i, v in enumerate(versions):
        assert registry.stage_history(v)[-1].actor == f"worker-{i}"
    by_alias = {c.alias: c.actor for c in registry.alias_history("actors")}
    assert by_alias == {f"pick-{i}": f"worker-{i}" for i in range(len(versions))}


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", 42, None, "x" * 256])
def test_a_bad_actor_is_refused_before_anything_is_written(registry: Registry, bad: object):
    v = _version(registry, 0)
    with pytest.raises(ValidationError) as caught:
        with cmr.acting_as(bad):  # type: ignore[arg-type]
            registry.promote(v, "staging")
    assert set(caught.value.errors) == {"actor"}
    assert registry.get_version(v.id).stage is cmr.Stage.EXPERIMENT
    assert len(registry.stage_history(v)) == 1


def test_the_longest_actor_fits_the_history(registry: Registry):
    v = _version(registry, 0)
    with cmr.acting_as("é" * 255):
        registry.promote(v, "staging")
    assert registry.stage_history(v)[-1].actor == "é" * 255
