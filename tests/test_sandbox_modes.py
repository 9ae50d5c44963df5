"""Each resolved sandbox name has one mode class; callers ask it instead of comparing names."""

from __future__ import annotations

import pytest

from grader.kernel.modes import Bubblewrap, NoSandbox, UidMode, sandbox_mode
from grader.kernel.sandbox import MODES


def test_every_resolved_name_has_its_mode_class():
    resolved = [name for name in MODES if name != "auto"]
    assert [type(sandbox_mode(name)) for name in resolved] == [Bubblewrap, UidMode, NoSandbox]
    assert [sandbox_mode(name).own_user for name in resolved] == [True, True, False]
    assert [sandbox_mode(name).mounts_view for name in resolved] == [True, False, False]


def test_an_unresolved_name_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match=r"expected a resolved sandbox mode \(bwrap, uid, none\),"
                                         r" got 'auto'"):
        sandbox_mode("auto")


def test_no_mode_has_a_batch_warning_to_add_but_uid(tmp_path):
    for mode in (Bubblewrap(), NoSandbox()):
        assert mode.batch_warning(out=tmp_path / "out", inputs=[]) is None
        assert not (tmp_path / "out").exists()
