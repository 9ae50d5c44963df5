"""The three sandbox modes, one class each: what differs between them lives here, nowhere else.

A batch resolves ``--sandbox auto|bwrap|uid|none`` once (:mod:`grader.kernel.sandbox_choice`)
to a mode's name, which its options carry (a string pickles to any worker);
:func:`sandbox_mode` gives the mode object for it. Callers ask the mode instead of comparing
names:

* :meth:`SandboxMode.start` gives a kernel's environment and kernel manager;
* :meth:`SandboxMode.after_kernel` cleans up after the kernel (instructor notes back);
* :meth:`SandboxMode.batch_warning` adds what a batch's instructor must know before it starts;
* :attr:`SandboxMode.own_user` says whether a kernel runs as a user of its own (then it is
  given control groups, and the datasets must be provided to it, not merely found).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from grader.kernel.sandbox import KernelHome


class SandboxMode:
    """How a grading kernel is contained (see the subclasses)."""

    name: ClassVar[str]
    own_user: ClassVar[bool]
    """True when the kernel runs as a user of its own (bubblewrap, uid mode)."""
    mounts_view: ClassVar[bool] = False
    """True when the kernel sees only what is mounted for it (bubblewrap)."""

    def start(self, home: KernelHome, *, fast: bool, data_dir: str | None,
              threads: int | None) -> tuple[dict[str, str], Any]:
        """The kernel's environment and a kernel manager that starts it in this mode."""
        raise NotImplementedError

    def after_kernel(self, home: KernelHome) -> list[str]:
        """Clean up after a kernel that has ended; the problems met, for the instructor."""
        return []

    def batch_warning(self, *, out: Path, inputs: Sequence[Path]) -> str | None:
        """What the instructor must know about this mode before a batch in ``out`` starts;
        ``inputs`` are the files and folders the batch reads (submissions, data, rubric)."""
        return None

    def __repr__(self) -> str:
        return f"<sandbox mode {self.name}>"


class Bubblewrap(SandboxMode):
    """The kernel runs in a bubblewrap sandbox: its own user, its own namespaces, and a file
    system holding only the course code it may see, its data and its own folders."""

    name = "bwrap"
    own_user = True
    mounts_view = True

    def start(self, home, *, fast, data_dir, threads):
        from grader.kernel.sandbox import kernel_environment, sandboxed_kernel_manager

        env = kernel_environment(fast=fast, data_dir=data_dir, threads=threads, sandboxed=True)
        return env, sandboxed_kernel_manager(home, data_dir=data_dir, env=env)


class UidMode(SandboxMode):
    """The kernel runs as a leased uid of its own on the real file system (where bubblewrap
    cannot start): see :mod:`grader.kernel.uid_mode`."""

    name = "uid"
    own_user = True

    def start(self, home, *, fast, data_dir, threads):
        from grader.kernel.kernel_view import kernel_view
        from grader.kernel.sandbox import kernel_environment
        from grader.kernel.uid_mode import uid_kernel_manager

        env = kernel_environment(fast=fast, data_dir=data_dir, threads=threads, sandboxed=False,
                                 home=home.home)
        env["TMPDIR"] = str(home.home)  # its own home (owned by its uid) for temporary files
        env["PYTHONPATH"] = str(kernel_view())  # the course code: the kernel's copy
        return env, uid_kernel_manager(home, data_dir=data_dir)

    def after_kernel(self, home):
        """Kill what the uid left running and remove its files, before the grader reads any
        of the kernel's files."""
        from grader.kernel.uid_mode import end_kernel_uid

        return [f"clean-up after the kernel (uid {home.uid}): {problem}"
                for problem in end_kernel_uid(home)]

    def batch_warning(self, *, out, inputs):
        """Make ``out`` private (0700), close the grader's code to the kernels, and name every
        input a kernel's uid could still read (checked by reading them as such a uid)."""
        from grader.base.keys import result_key_file
        from grader.base.paths import PACKAGE_DIR, RUBRIC_DIR, SOLUTIONS_DIR
        from grader.kernel.kernel_view import close_to_kernels
        from grader.kernel.uid_mode import uid_exposures

        out.mkdir(parents=True, exist_ok=True)
        os.chmod(out, 0o700)
        close_to_kernels()  # kernels import the course code from their own copy
        paths = [*inputs, out, PACKAGE_DIR, RUBRIC_DIR, SOLUTIONS_DIR, result_key_file()]
        exposed = uid_exposures([p for p in paths if p.exists()])
        if not exposed:
            return None
        return (f"Readable by the kernels here: {', '.join(exposed)} (fix: chmod -R go-rwx on"
                " them, or grade with bwrap)")


class NoSandbox(SandboxMode):
    """The kernel runs as the grader's own user, with only the limits of
    :mod:`grader.kernel.execute` (the batch warns loudly)."""

    name = "none"
    own_user = False

    def start(self, home, *, fast, data_dir, threads):
        from grader.kernel.sandbox import kernel_environment, make_kernel_manager

        env = kernel_environment(fast=fast, data_dir=data_dir, threads=threads, sandboxed=False,
                                 home=home.home)
        return env, make_kernel_manager(home.sockets)


_MODES: dict[str, SandboxMode] = {mode.name: mode for mode in (Bubblewrap(), UidMode(), NoSandbox())}


def sandbox_mode(name: str) -> SandboxMode:
    """The mode object of a resolved mode's name (``"bwrap"``, ``"uid"`` or ``"none"``)."""
    try:
        return _MODES[name]
    except KeyError:
        known = ", ".join(_MODES)
        raise ValueError(f"expected a resolved sandbox mode ({known}), got {name!r}; 'auto' is"
                         " resolved by grader.kernel.sandbox_choice") from None
