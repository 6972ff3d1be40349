"""httap/unlink.py: a file removed a slice at a time."""

from __future__ import annotations

import pytest

from httap.unlink import unlinking


def test_a_large_file_shrinks_a_step_at_a_time_then_is_gone(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 3500)
    sizes = []
    for left in unlinking(str(path), 1000):
        assert path.stat().st_size == left
        sizes.append(left)
    assert sizes == [2500, 1500, 500] and not path.exists()


def test_a_file_of_one_step_or_less_is_removed_at_once(tmp_path):
    path = tmp_path / "small"
    path.write_bytes(b"x" * 1000)
    assert list(unlinking(str(path), 1000)) == [] and not path.exists()


def test_a_link_is_removed_and_what_it_points_to_is_left_whole(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"x" * 5000)
    (tmp_path / "link").symlink_to(target)
    assert list(unlinking(str(tmp_path / "link"), 1000)) == []
    assert not (tmp_path / "link").is_symlink() and target.stat().st_size == 5000


def test_a_file_already_gone_is_no_error_but_a_failed_unlink_is(tmp_path):
    assert list(unlinking(str(tmp_path / "gone"), 1000)) == []
    with pytest.raises(IsADirectoryError):  # what unlink(2) says of a folder on Linux
        list(unlinking(str(tmp_path), 1000))
    assert tmp_path.is_dir()
