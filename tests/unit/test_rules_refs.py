"""The shared input rules: model names, version strings, metrics, tags, enums and refs."""

from __future__ import annotations

import pytest

from crucible_model_registry import ArtifactType, Relationship, Stage, ValidationError
from crucible_model_registry.domain.enums import parse_enum
from crucible_model_registry.domain.refs import VersionRef, parse_ref
from crucible_model_registry.domain.rules import (
    MAX_ID,
    MAX_MODEL_NAME,
    check_alias_name,
    check_id,
    check_local_path,
    check_long_text,
    check_metrics,
    check_model_name,
    check_tags,
    check_text,
    check_version_string,
    is_reserved_ref_word,
    text_problem,
)

# --------------------------------------------------------------------------- model names


@pytest.mark.parametrize(
    "name",
    ["llama-3.1-8b-sft", "m", "Qwen2.5_7B", "meta-llama/Llama-3.1-8B", "a/b/c", "x" * 200],
)
def test_good_model_names(name: str) -> None:
    assert check_model_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * (MAX_MODEL_NAME + 1),
        "has space",
        " leading",
        "trailing ",
        "-dash-first",
        ".hidden",
        "a//b",
        "/abs",
        "end/",
        "../escape",
        "a/../b",
        "a..b",
        "tab\tname",
        "new\nline",
        "at@sign",
        None,
        42,
    ],
)
def test_bad_model_names(name: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_model_name(name)
    assert list(info.value.errors) == ["model_name"]


def test_model_name_errors_name_the_given_field() -> None:
    with pytest.raises(ValidationError) as info:
        check_model_name("", field="name")
    assert list(info.value.errors) == ["name"]


# --------------------------------------------------------------------------- version strings


@pytest.mark.parametrize("version", ["1", "1.0.0", "v2", "1.0.0-rc1", "2024_05_01", "1+local"])
def test_good_version_strings(version: str) -> None:
    assert check_version_string(version) == version


@pytest.mark.parametrize(
    "version",
    [
        "",
        "a/b",
        "1..2",
        "..",
        " 1",
        "1 ",
        "1 0",
        "1\t0",
        "1\n",
        ".1",
        "-1",
        "x" * 65,
        "production",
        "Staging",
        "LATEST",
        "development",
        "archived",
        "experiment",
        None,
        1,
    ],
)
def test_bad_version_strings(version: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_version_string(version)
    assert list(info.value.errors) == ["version"]


@pytest.mark.parametrize("word", ["latest", "LATEST", "production", "Development", "archived"])
def test_reserved_ref_words(word: str) -> None:
    assert is_reserved_ref_word(word)


def test_ordinary_words_are_not_reserved() -> None:
    assert not is_reserved_ref_word("champion")


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("alias", ["champion", "c", "Best_v2.1-x", "a" + "b" * 63])
def test_good_alias_names(alias: str) -> None:
    assert check_alias_name(alias) == alias


@pytest.mark.parametrize(
    "alias", ["", "1st", "_x", "has space", "a" * 65, "production", "LATEST", "development", None]
)
def test_bad_alias_names(alias: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_alias_name(alias)
    assert list(info.value.errors) == ["alias"]


# --------------------------------------------------------------------------- metrics


def test_metrics_become_floats() -> None:
    checked = check_metrics({"accuracy": 0.92, "steps": 1000, "loss": -1.5})
    assert checked == {"accuracy": 0.92, "steps": 1000.0, "loss": -1.5}
    assert all(type(v) is float for v in checked.values())


def test_no_metrics_is_empty() -> None:
    assert check_metrics(None) == {}
    assert check_metrics({}) == {}


@pytest.mark.parametrize(
    "value",
    [True, False, float("nan"), float("inf"), float("-inf"), "0.9", None, [0.9], {"v": 1}],
    ids=["true", "false", "nan", "inf", "-inf", "str", "none", "list", "dict"],
)
def test_bad_metric_values(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_metrics({"accuracy": 0.9, "bad": value})
    assert list(info.value.errors) == ["metrics.bad"]


def test_every_bad_metric_is_reported() -> None:
    with pytest.raises(ValidationError) as info:
        check_metrics({"a": float("nan"), "b": True, "c": 1.0, "d": float("inf")})
    assert set(info.value.errors) == {"metrics.a", "metrics.b", "metrics.d"}


@pytest.mark.parametrize("name", ["", "x" * 256, 7, None])
def test_bad_metric_names(name: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_metrics({name: 1.0})
    assert list(info.value.errors) == ["metrics"]


@pytest.mark.parametrize("metrics", [[("a", 1.0)], "accuracy", 0.9])
def test_metrics_must_be_a_mapping(metrics: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_metrics(metrics)
    assert list(info.value.errors) == ["metrics"]


def test_numpy_metric_values_are_accepted() -> None:
    np = pytest.importorskip("numpy")
    checked = check_metrics({"accuracy": np.float32(0.5), "steps": np.int64(3)})
    assert checked == {"accuracy": 0.5, "steps": 3.0}
    with pytest.raises(ValidationError):
        check_metrics({"accuracy": np.float64("nan")})
    with pytest.raises(ValidationError):
        check_metrics({"flag": np.bool_(True)})


# --------------------------------------------------------------------------- tags


def test_tags_are_deduplicated_in_order() -> None:
    assert check_tags(["sft", "dpo", "sft", "eval"]) == ["sft", "dpo", "eval"]
    assert check_tags(None) == []
    assert check_tags(("a",)) == ["a"]


@pytest.mark.parametrize(
    "tags", ["sft", ["ok", ""], ["ok", "   "], ["x" * 101], [3], ["new\nline"], 5]
)
def test_bad_tags(tags: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_tags(tags)
    assert list(info.value.errors) == ["tags"]


# --------------------------------------------------------------------------- enums


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("experiment", Stage.EXPERIMENT),
        ("development", Stage.EXPERIMENT),
        ("PRODUCTION", Stage.PRODUCTION),
        (" staging ", Stage.STAGING),
        (Stage.ARCHIVED, Stage.ARCHIVED),
    ],
)
def test_stage_input(value: object, expected: Stage) -> None:
    assert parse_enum(Stage, value, field="stage") is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fine_tune", Relationship.FINE_TUNED_FROM),
        ("distillation", Relationship.DISTILLED_FROM),
        ("merge", Relationship.MERGED_FROM),
        ("quantization", Relationship.QUANTIZED_FROM),
        ("adapter", Relationship.ADAPTER_OF),
        ("dpo_trained_from", Relationship.DPO_TRAINED_FROM),
        ("rl_trained_from", Relationship.RL_TRAINED_FROM),
    ],
)
def test_relationship_input(value: str, expected: Relationship) -> None:
    assert parse_enum(Relationship, value, field="lineage_type") is expected


@pytest.mark.parametrize(
    ("enum", "value"),
    [(Stage, "deployed"), (Stage, None), (Stage, 1), (Relationship, "cloned"), (ArtifactType, "")],
)
def test_unknown_enum_values(enum: type, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_enum(enum, value, field="f")
    assert list(info.value.errors) == ["f"]


def test_enums_are_strings() -> None:
    assert isinstance(Stage.PRODUCTION, str)
    assert str(Stage.PRODUCTION) == "production"
    assert {s.value for s in Stage} == {"experiment", "staging", "production", "archived"}
    assert {a.value for a in ArtifactType} == {
        "checkpoint",
        "config",
        "tokenizer",
        "merged",
        "gguf",
        "onnx",
        "tensorrt",
        "adapter",
        "other",
    }


# --------------------------------------------------------------------------- refs


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (42, VersionRef(id=42)),
        ("42", VersionRef(id=42)),
        (" 7 ", VersionRef(id=7)),
        ("llama@1.0.0", VersionRef(model_name="llama", selector="1.0.0")),
        ("llama@production", VersionRef(model_name="llama", selector="production")),
        ("llama@latest", VersionRef(model_name="llama", selector="latest")),
        ("llama@champion", VersionRef(model_name="llama", selector="champion")),
        ("org/llama@2", VersionRef(model_name="org/llama", selector="2")),
    ],
)
def test_good_refs(ref: object, expected: VersionRef) -> None:
    assert parse_ref(ref) == expected


@pytest.mark.parametrize(
    "ref",
    [
        "llama",
        "llama@",
        "@1.0",
        "@",
        "",
        "bad name@1",
        "a@b@c",
        "../x@1",
        0,
        -3,
        "0",
        True,
        None,
        1.5,
        ["llama@1"],
    ],
)
def test_bad_refs(ref: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_ref(ref, field="version")
    assert list(info.value.errors) == ["version"]


def test_refs_print_as_written() -> None:
    assert str(VersionRef(id=3)) == "3"
    assert str(VersionRef(model_name="m", selector="production")) == "m@production"


# --------------------------------------------------------------------------- text, ids, paths
# Issue 14 findings 7, 8 and 12: one rule set for every database.


@pytest.mark.parametrize(
    "text", ["a\x00b", "a\x1bb", "a\x7fb", "a\x85b", "a\u2028b", "a\u202eb", "a\ud800b"]
)
def test_one_line_text_refuses_controls_and_lone_surrogates(text: str) -> None:
    assert text_problem(text) is not None
    with pytest.raises(ValidationError) as info:
        check_text(text, field="recipe")
    assert list(info.value.errors) == ["recipe"]


def test_long_text_allows_line_breaks_and_tabs_only() -> None:
    assert check_long_text("a\nb\r\n\tc", field="description") == "a\nb\r\n\tc"
    for text in ("a\x00", "a\x0b", "a\ud800", "a\u202e"):
        with pytest.raises(ValidationError):
            check_long_text(text, field="description")


def test_text_is_nfc_and_its_length_counted_after() -> None:
    assert check_text("cafe\u0301", field="recipe") == "caf\u00e9"
    assert check_text("cafe\u0301", field="storage_path", normalize=False) == "cafe\u0301"
    assert check_text("e\u0301" * 3, field="recipe", limit=3) == "\u00e9" * 3
    assert check_tags(["cafe\u0301", "caf\u00e9"]) == ["caf\u00e9"]


def test_metric_names_with_two_spellings_are_refused() -> None:
    with pytest.raises(ValidationError):
        check_metrics({"caf\u00e9": 1.0, "cafe\u0301": 2.0})


@pytest.mark.parametrize("value", [0, -1, MAX_ID + 1, 10**30, True, 1.0, "1"])
def test_ids_are_whole_numbers_from_1_to_2_63_minus_1(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        check_id(value, field="id")
    assert list(info.value.errors) == ["id"]
    assert check_id(MAX_ID, field="id") == MAX_ID


@pytest.mark.parametrize(
    "ref", [10**30, str(10**30), "9" * 5000, "m@1\x00", "m@" + "1" * 65, "m@a b", "m@\ud800"]
)
def test_refs_beyond_ids_or_selectors_are_refused(ref: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_ref(ref)
    assert list(info.value.errors) == ["ref"]


def test_local_paths_must_be_file_names_the_os_can_take() -> None:
    assert str(check_local_path("/tmp/w\udcff.bin", field="path")) == "/tmp/w\udcff.bin"
    for bad in ("/tmp/a\x00", "/tmp/a\ud800", 42):
        with pytest.raises(ValidationError) as info:
            check_local_path(bad, field="path")
        assert list(info.value.errors) == ["path"]
