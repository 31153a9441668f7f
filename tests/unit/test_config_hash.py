"""The config hash: RFC 8785 canonical JSON, its refusals, and the normalisation before it."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import pathlib
import struct

import pydantic
import pytest

from crucible_model_registry import ValidationError, hash_config
from crucible_model_registry.domain.config_hash import canonical_json, normalize_config


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def from_ieee(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical serialisation.
RFC_NUMBER_VECTORS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


# --------------------------------------------------------------------------- the canonical form


def test_key_order_never_matters() -> None:
    a = {"lr": 1e-4, "optimizer": {"name": "adamw", "betas": [0.9, 0.95]}, "epochs": 3}
    b = {"epochs": 3, "optimizer": {"betas": [0.9, 0.95], "name": "adamw"}, "lr": 1e-4}
    assert hash_config(a) == hash_config(b)


def test_the_hash_is_sha256_of_the_canonical_bytes() -> None:
    config = {"b": [1, 2.5, "x", None, True], "a": {"z": False}}
    canonical = b'{"a":{"z":false},"b":[1,2.5,"x",null,true]}'
    assert canonical_json(normalize_config(config)) == canonical
    assert hash_config(config) == sha256(canonical)


def test_an_empty_config_has_a_hash() -> None:
    assert hash_config({}) == sha256(b"{}")


def test_different_configs_have_different_hashes() -> None:
    assert hash_config({"lr": 1e-4}) != hash_config({"lr": 2e-4})
    assert hash_config({"seed": 2**53 - 1}) != hash_config({"seed": 2**53 - 2})
    assert hash_config({"a": [1, 2]}) != hash_config({"a": [2, 1]})


@pytest.mark.parametrize(("bits", "expected"), RFC_NUMBER_VECTORS)
def test_rfc8785_number_vectors(bits: str, expected: str) -> None:
    config = {"n": from_ieee(bits)}
    canonical = b'{"n":' + expected.encode() + b"}"
    assert canonical_json(normalize_config(config)) == canonical
    assert hash_config(config) == sha256(canonical)


def test_rfc8785_sample_document() -> None:
    # RFC 8785 section 3.2.2's example input and its canonical output.
    doc = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    canonical = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()
    assert canonical_json(normalize_config(doc)) == canonical
    assert hash_config(doc) == sha256(canonical)


def test_rfc8785_property_order_is_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: the emoji's surrogate pair sorts before U+FB33.
    doc = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    # canonical_json alone: U+FB33 is not in NFC, so normalize_config would decompose it.
    canonical = canonical_json(doc).decode()
    positions = [canonical.index(f'"{doc[key]}"') for key in order]
    assert positions == sorted(positions)


def test_safe_integers_at_the_limit_are_accepted() -> None:
    assert canonical_json(normalize_config({"n": 2**53 - 1})) == b'{"n":9007199254740991}'
    assert canonical_json(normalize_config({"n": -(2**53 - 1)})) == b'{"n":-9007199254740991}'


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(ValidationError) as info:
        hash_config({"optimizer": {"lr": value}})
    assert list(info.value.errors) == ["training_config.optimizer.lr"]


@pytest.mark.parametrize("value", [2**53, -(2**53), 2**64, 10**30])
def test_unsafe_integers_are_refused(value: int) -> None:
    with pytest.raises(ValidationError) as info:
        hash_config({"seed": value})
    assert all(key.startswith("training_config") for key in info.value.errors)


@pytest.mark.parametrize(
    "value",
    [object(), b"bytes", 1 + 2j, len, type, Ellipsis],
    ids=["object", "bytes", "complex", "function", "class", "ellipsis"],
)
def test_values_with_no_json_form_are_refused(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        hash_config({"layers": [1, {"odd": value}]})
    assert list(info.value.errors) == ["training_config.layers[1].odd"]


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        hash_config({"schedule": {1: "warmup"}})
    assert list(info.value.errors) == ["training_config.schedule"]


def test_lone_surrogates_are_refused() -> None:
    with pytest.raises(ValidationError):
        hash_config({"name": "\ud800"})


# --------------------------------------------------------------------------- normalisation


class Optimizer(enum.Enum):
    ADAMW = "adamw"
    SGD = "sgd"


class Precision(enum.IntEnum):
    BF16 = 16


@dataclasses.dataclass
class LoraConfig:
    rank: int
    alpha: float
    targets: tuple[str, ...]


class TrainingArgs(pydantic.BaseModel):
    lr: float
    optimizer: Optimizer
    output_dir: pathlib.Path


def test_dataclasses_hash_like_their_fields() -> None:
    config = {"lora": LoraConfig(rank=8, alpha=16.0, targets=("q", "v"))}
    plain = {"lora": {"rank": 8, "alpha": 16.0, "targets": ["q", "v"]}}
    assert hash_config(config) == hash_config(plain)


def test_a_dataclass_can_be_the_whole_config() -> None:
    lora = LoraConfig(rank=8, alpha=16.0, targets=("q",))
    assert hash_config(lora) == hash_config({"alpha": 16.0, "rank": 8, "targets": ["q"]})


def test_pydantic_models_hash_like_their_json_dump() -> None:
    args = TrainingArgs(lr=1e-4, optimizer=Optimizer.ADAMW, output_dir=pathlib.Path("/tmp/o"))
    assert hash_config({"args": args}) == hash_config(
        {"args": {"lr": 1e-4, "optimizer": "adamw", "output_dir": "/tmp/o"}}
    )


def test_enums_hash_like_their_values() -> None:
    assert hash_config({"opt": Optimizer.SGD, "bits": Precision.BF16}) == hash_config(
        {"opt": "sgd", "bits": 16}
    )
    assert hash_config({Optimizer.SGD: 1}) == hash_config({"sgd": 1})


def test_paths_hash_like_posix_strings() -> None:
    assert hash_config({"data": pathlib.PurePosixPath("/data/train.jsonl")}) == hash_config(
        {"data": "/data/train.jsonl"}
    )
    assert hash_config({"data": pathlib.PureWindowsPath("data\\train.jsonl")}) == hash_config(
        {"data": "data/train.jsonl"}
    )


def test_tuples_hash_like_lists_and_sets_ignore_order() -> None:
    assert hash_config({"betas": (0.9, 0.95)}) == hash_config({"betas": [0.9, 0.95]})
    assert hash_config({"tags": {"b", "a", "c"}}) == hash_config({"tags": {"c", "a", "b"}})


def test_ints_and_floats_of_the_same_value_share_a_hash() -> None:
    # RFC 8785 serialises numbers by value (I-JSON): 3 and 3.0 are both "3".
    assert hash_config({"epochs": 3}) == hash_config({"epochs": 3.0})


def test_numpy_scalars_and_arrays_are_normalised() -> None:
    np = pytest.importorskip("numpy")
    assert hash_config(
        {"lr": np.float64(1e-4), "steps": np.int64(1000), "w": np.array([1, 2])}
    ) == hash_config({"lr": 1e-4, "steps": 1000, "w": [1, 2]})
    assert hash_config({"flag": np.bool_(True)}) == hash_config({"flag": True})


def test_numpy_nan_is_refused() -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(ValidationError) as info:
        hash_config({"lr": np.float32("nan")})
    assert list(info.value.errors) == ["training_config.lr"]


def test_nfc_and_nfd_spellings_hash_alike_and_nfc_hashes_are_unchanged() -> None:
    import unicodedata

    import rfc8785

    nfc_config = {"clé": "café", "layers": [{"naïve": True}], "lr": 1e-4}
    nfd_config = {
        unicodedata.normalize("NFD", k): (
            unicodedata.normalize("NFD", v) if isinstance(v, str) else v
        )
        for k, v in nfc_config.items()
    }
    nfd_config["layers"] = [{unicodedata.normalize("NFD", "naïve"): True}]
    assert nfd_config != nfc_config
    # The hash of an NFC config is what it always was: SHA-256 of its RFC 8785 form.
    assert hash_config(nfc_config) == sha256(rfc8785.dumps(nfc_config))
    assert hash_config(nfd_config) == hash_config(nfc_config)
    assert normalize_config(nfd_config) == nfc_config
