"""The wording of errors.py's messages (issue 20 #13): sentences a person can act on."""

from __future__ import annotations

from crucible_model_registry.errors import LineageCycleError, NotFoundError, ValidationError


def test_a_predicate_message_follows_its_field_without_a_colon():
    err = ValidationError({"recipe": ["is required (a non-empty string)"], "stage": ["'x' is odd"]})
    assert str(err) == "invalid input: recipe is required (a non-empty string) | stage: 'x' is odd"
    assert err.errors == {"recipe": ["is required (a non-empty string)"], "stage": ["'x' is odd"]}


def test_a_self_edge_is_not_described_as_a_cycle_between_two_versions():
    err = LineageCycleError(7, 7)
    assert (err.parent_id, err.child_id) == (7, 7)
    assert str(err) == "version 7 cannot be its own parent (a lineage edge needs two)"
    assert "would close a cycle" in str(LineageCycleError(3, 5))


def test_an_unknown_version_ref_hints_at_listing_the_models_versions():
    err = NotFoundError("version", "m@9")
    assert (err.kind, err.ref) == ("version", "m@9")
    assert str(err).endswith("`cmr query --model m` lists its versions")
    assert str(NotFoundError("version", 9)) == "version 9 not found"
