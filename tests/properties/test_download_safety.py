"""Property: uploads, downloads, deletes and gc never remove or change a user's file (issue 13).

A random user folder; random uploads of its files and sub-folders as artifacts; downloads of
them into random places in the same folder (overwrite on or off); artifact deletes and
garbage collections. A plain-Python oracle says what the folder must hold after each step:
a download either adds the artifact's files (replacing same-named files only with
``overwrite``) or fails and changes nothing. The real folder must match it exactly, files
and directories, after every step.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from crucible_model_registry import Artifact, Registry, ValidationError
from crucible_model_registry.storage.local import LocalStorage

SEGMENTS = ["a", "b", "c.txt", "d.bin"]

paths = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map("/".join)
trees = st.dictionaries(paths, st.binary(max_size=64), min_size=1, max_size=8)
places = st.sampled_from(["", "a", "b", "a/b", "new", "new/deeper", "c.txt", "a/d.bin"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("upload"), paths | st.just("")),
        st.tuples(st.just("download"), st.integers(0, 5), places, st.booleans()),
        st.tuples(st.just("delete"), st.integers(0, 5)),
        st.tuples(st.just("gc")),
    ),
    min_size=1,
    max_size=12,
)


def consistent(tree: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that would need a file and a folder of the same name."""
    kept: dict[str, bytes] = {}
    for rel, data in sorted(tree.items()):
        if any(rel.startswith(f + "/") or f.startswith(rel + "/") for f in kept):
            continue
        kept[rel] = data
    return kept


def ancestors(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def on_disk(root: Path) -> tuple[dict[str, bytes], set[str]]:
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    dirs = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()}
    return files, dirs


def expected_download(
    model: dict[str, bytes],
    artifact: dict[str, bytes],
    folder: bool,
    name: str,
    place: str,
    overwrite: bool,
) -> dict[str, bytes] | None:
    """What the user folder holds after the download, or None if it must fail unchanged."""
    dirs = {a for rel in model for a in ancestors(rel)}

    def is_dir(rel: str) -> bool:
        return rel == "" or rel in dirs

    if folder:
        writes = {(f"{place}/{rel}" if place else rel): data for rel, data in artifact.items()}
    else:
        target = f"{place}/{name}" if is_dir(place) else place
        writes = {target: artifact[name]}
    for target in writes:
        if target in dirs or any(a in model for a in ancestors(target)):
            return None  # a folder where a file goes, or a file where a folder goes
    if not overwrite and any(target in model for target in writes):
        return None
    return {**model, **writes}


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(user_tree=trees, steps=operations)
def test_no_sequence_of_operations_removes_a_users_file(
    user_tree: dict[str, bytes], steps: list[tuple[object, ...]], sqlite_template: Path
) -> None:
    with tempfile.TemporaryDirectory(prefix="cmr-prop-") as tmp:
        base = Path(tmp)
        db = base / "registry.db"
        db.write_bytes(sqlite_template.read_bytes())
        registry = Registry.from_url(f"sqlite:///{db}", storage=LocalStorage(base / "store"))
        root = base / "user"
        root.mkdir()
        model = consistent(user_tree)
        for rel, data in model.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        uploaded: list[tuple[Artifact, dict[str, bytes], bool, str]] = []
        try:
            for number, step in enumerate(steps):
                if step[0] == "upload":
                    source = str(step[1])
                    if (
                        source
                        and source not in model
                        and source not in {a for rel in model for a in ancestors(rel)}
                    ):
                        continue
                    folder = source == "" or source not in model
                    prefix = f"{source}/" if source else ""
                    v = registry.register(
                        model_name="m", version=str(number), recipe="r", base_model="b",
                        training_config={"step": number},
                    )  # fmt: skip
                    a = registry.upload_artifact(
                        v, "checkpoint", root / source, name=f"art{number}"
                    )
                    name = f"art{number}"
                    content = (
                        {r[len(prefix) :]: d for r, d in model.items() if r.startswith(prefix)}
                        if folder
                        else {name: model[source]}
                    )
                    uploaded.append((a, content, folder, name))
                elif step[0] == "download" and uploaded:
                    a, content, folder, name = uploaded[int(str(step[1])) % len(uploaded)]
                    place, overwrite = str(step[2]), bool(step[3])
                    after = expected_download(model, content, folder, name, place, overwrite)
                    try:
                        registry.download_artifact(
                            a, root / place, overwrite=overwrite, parents=True
                        )
                    except ValidationError:
                        assert after is None, (place, overwrite)
                    else:
                        assert after is not None, (place, overwrite)
                        model = after
                elif step[0] == "delete" and uploaded:
                    a, *_ = uploaded.pop(int(str(step[1])) % len(uploaded))
                    registry.delete_artifact(a)
                elif step[0] == "gc":
                    registry.collect_garbage(older_than=timedelta(0))
                files, dirs = on_disk(root)
                assert files == model
                assert dirs == {a for rel in model for a in ancestors(rel)}
        finally:
            registry.close()
