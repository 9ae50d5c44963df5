"""Fast mode's shared kernel copy: the same data as a per-run copy, written once, verified
at every use, never taken from a folder someone else could have written."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.data.holdout import KernelData, plan_holdout
from grader.data.kernel_cache import (
    cache_root,
    kernel_copy,
    prepare_fast_copy,
    shared_fast_copy,
)


@pytest.fixture()
def source(tmp_path, data_dir) -> str:
    """A data folder holding one real dataset (MNIST), so a copy takes a moment."""
    folder = tmp_path / "source"
    folder.mkdir()
    shutil.copy(Path(data_dir) / "mnist.npz", folder / "mnist.npz")
    return str(folder)


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "mnist.npz") as data:
        return {k: data[k] for k in data.files}


def test_the_shared_copy_holds_what_a_per_run_copy_holds_and_is_written_once(tmp_path, source):
    plan = plan_holdout(source, fast=True, key=b"k" * 32)
    first = shared_fast_copy(plan, parent=str(tmp_path))
    assert first is not None and not first.owned
    own = KernelData.create(plan, parent=str(tmp_path))
    try:
        mine, shared = _arrays(own.path), _arrays(first.path)
        assert sorted(mine) == sorted(shared)
        assert all(np.array_equal(mine[k], shared[k]) for k in mine)
    finally:
        own.remove()
    written = os.stat(first.path / "mnist.npz").st_mtime_ns
    # another key (another course on this machine): the fast copy holds no secret, same entry
    again = shared_fast_copy(plan_holdout(source, fast=True, key=b"q" * 32), parent=str(tmp_path))
    assert again is not None and again.path == first.path
    assert os.stat(again.path / "mnist.npz").st_mtime_ns == written  # not written again
    again.remove()  # a batch's clean-up keeps the shared copy
    assert (first.path / "mnist.npz").is_file()
    assert oct(os.stat(first.path / "mnist.npz").st_mode & 0o777) == "0o444"


def test_a_damaged_file_is_found_and_the_entry_written_again(tmp_path, source):
    plan = plan_holdout(source, fast=True, key=b"k" * 32)
    first = shared_fast_copy(plan, parent=str(tmp_path))
    good = _arrays(first.path)
    target = first.path / "mnist.npz"
    os.chmod(first.path, 0o755)
    os.chmod(target, 0o644)
    with open(target, "r+b") as handle:  # one byte of the images changed
        handle.seek(-100, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-100, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 0xFF]))
    os.chmod(target, 0o444)
    again = shared_fast_copy(plan, parent=str(tmp_path))
    assert again is not None
    repaired = _arrays(again.path)
    assert all(np.array_equal(good[k], repaired[k]) for k in good)


def test_a_changed_dataset_file_gets_its_own_entry(tmp_path, source):
    plan = plan_holdout(source, fast=True, key=b"k" * 32)
    first = shared_fast_copy(plan, parent=str(tmp_path))
    os.utime(Path(source) / "mnist.npz", ns=(1, 1))  # the instructor replaced the file
    second = shared_fast_copy(plan, parent=str(tmp_path))
    assert second is not None and second.path != first.path


def test_an_entry_unused_for_a_week_whose_files_changed_is_removed(tmp_path, source, data_dir):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(Path(data_dir) / "mnist.npz", other / "mnist.npz")
    plan = plan_holdout(source, fast=True, key=b"k" * 32)
    old = shared_fast_copy(plan, parent=str(tmp_path))
    kept = shared_fast_copy(plan_holdout(str(other), fast=True, key=b"k" * 32),
                            parent=str(tmp_path))
    week = 8 * 86400
    for entry in (old, kept):  # neither used for more than a week
        stamp = os.stat(entry.root / "manifest.json").st_mtime - week
        os.utime(entry.root / "manifest.json", (stamp, stamp))
    os.utime(Path(source) / "mnist.npz", ns=(1, 1))  # the instructor replaced this file
    new = shared_fast_copy(plan, parent=str(tmp_path))
    assert new.root != old.root and new.root.is_dir()
    assert not old.root.exists()  # its file changed: no batch will use it again
    assert kept.root.is_dir()  # its file is unchanged: kept however old


@pytest.mark.parametrize("kind", ["link", "writable by others", "someone else's"])
def test_a_cache_folder_the_grader_did_not_make_alone_is_never_used(tmp_path, source, kind):
    """A planted folder (a link, a folder others can write, another user's) means no shared
    copy: the batch writes its own, as in full mode, and the planted folder is left alone."""
    root = cache_root(str(tmp_path))
    elsewhere = tmp_path / "planted"
    elsewhere.mkdir(mode=0o777)
    if kind == "link":
        root.symlink_to(elsewhere, target_is_directory=True)
    else:
        root.mkdir(mode=0o700)
        if kind == "writable by others":
            os.chmod(root, 0o777)
        else:
            if os.geteuid() != 0:
                pytest.skip("needs root to make a folder of another user")
            os.chown(root, 65534, 65534)
    plan = plan_holdout(source, fast=True, key=b"k" * 32)
    assert shared_fast_copy(plan, parent=str(tmp_path)) is None
    assert os.listdir(elsewhere) == [] and (kind == "link" or os.listdir(root) == [])


def test_full_mode_never_shares_its_copy(source):
    """Full mode's copy lacks the secret hold-out's rows: it is written per run."""
    plan = plan_holdout(source, fast=False, key=b"k" * 32)
    assert shared_fast_copy(plan) is None
    made = kernel_copy(plan)
    try:
        assert made.owned and made.root.name.startswith("dlcourse-kdata-")
    finally:
        made.remove()
    assert not made.root.exists()


def test_a_copy_started_early_is_the_one_the_batch_then_uses(tmp_path, source):
    """A batch starts writing the shared copy with its first step (prepare_fast_copy); the
    kernel copy it asks for later is that entry, not written a second time."""
    thread = prepare_fast_copy(source, parent=str(tmp_path))
    assert thread is not None
    thread.join(timeout=120)
    assert not thread.is_alive()
    entries = [p for p in cache_root(str(tmp_path)).iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1, entries
    written = os.stat(entries[0] / "data" / "mnist.npz").st_mtime_ns
    used = shared_fast_copy(plan_holdout(source, fast=True, key=b"k" * 32), parent=str(tmp_path))
    assert used is not None and used.root == entries[0]
    assert os.stat(used.path / "mnist.npz").st_mtime_ns == written
    assert prepare_fast_copy(str(tmp_path / "no such folder"), parent=str(tmp_path)) is None


def test_a_broken_dataset_the_early_copy_met_is_reported_by_the_batch(tmp_path, source):
    """The thread started early swallows the error (nothing would report it there); the
    batch's own call meets it again and says which file is wrong and how to fix it."""
    from helpers.data import MalformedDatasetError

    Path(source, "mnist.npz").write_bytes(b"not a zip archive")
    thread = prepare_fast_copy(source, parent=str(tmp_path))
    thread.join(timeout=120)
    assert not thread.is_alive()
    with pytest.raises(MalformedDatasetError, match="mnist.npz: expected a NumPy .npz archive"):
        shared_fast_copy(plan_holdout(source, fast=True, key=b"k" * 32), parent=str(tmp_path))
    assert not [p for p in cache_root(str(tmp_path)).iterdir()]  # no half-written entry left


def test_a_split_the_copy_reads_on_its_own_is_still_checked(tmp_path, source):
    """The copy reads each dataset's train and test splits in separate threads: a test split
    of the wrong shape is still refused, with the split named, and no entry is left."""
    from helpers.data import MalformedDatasetError

    with np.load(Path(source) / "mnist.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["x_test"] = arrays["x_test"][:, :27]
    with open(Path(source) / "mnist.npz", "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(MalformedDatasetError, match=r"expected x_test of shape \(n, 28, 28\)"):
        shared_fast_copy(plan_holdout(source, fast=True, key=b"k" * 32), parent=str(tmp_path))
    assert not [p for p in cache_root(str(tmp_path)).iterdir()]


def _as_in_a_new_container(path: Path) -> None:
    """The same file under a new inode, its modification time to the second (what a container
    started from an image sees: image layers keep neither inodes nor nanoseconds)."""
    info = path.stat()
    shutil.copyfile(path, path.with_name("layer.tmp"))
    os.utime(path.with_name("layer.tmp"), (int(info.st_atime), int(info.st_mtime)))
    os.replace(path.with_name("layer.tmp"), path)


@pytest.mark.parametrize("image", [True, False])
def test_an_image_folder_keeps_its_copy_when_the_container_changes_inodes(
        tmp_path, source, monkeypatch, image):
    """``DLCOURSE_KCACHE_DIR`` (the Gradescope image): the copy setup.sh wrote is used by
    every container; elsewhere a file with a new inode still gets a copy of its own."""
    os.utime(Path(source) / "mnist.npz", ns=(1_700_000_000_123_456_789,) * 2)
    if image:
        monkeypatch.setenv("DLCOURSE_KCACHE_DIR", str(tmp_path))
    plan = plan_holdout(source, fast=True, key=b"k" * 32)
    first = shared_fast_copy(plan, parent=None if image else str(tmp_path))
    _as_in_a_new_container(Path(source) / "mnist.npz")
    again = shared_fast_copy(plan, parent=None if image else str(tmp_path))
    assert first is not None and again is not None
    assert (again.path == first.path) is image
    assert again.path.parent.parent == cache_root(str(tmp_path))
