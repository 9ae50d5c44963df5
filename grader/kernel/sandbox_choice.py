"""Which sandbox a batch's kernels run in: ``--sandbox auto|bwrap|uid|none`` resolved once."""

from __future__ import annotations

from grader.base.errors import GraderError
from grader.kernel.sandbox import (
    MODES,
    NAMESPACE_PROBLEM,
    PYTHON_PROBLEM,
    UNSANDBOXED_WARNING,
    SandboxSetting,
    bwrap_problem,
)
from grader.kernel.uid_mode import uid_problem, uid_warning


def resolve_sandbox(requested: str) -> SandboxSetting:
    """Turn ``--sandbox auto|bwrap|uid|none`` into the setting used for every kernel.

    ``auto``: bubblewrap when it works here, else uid mode when the grader is root and
    ``setpriv`` works (:func:`uid_problem`), else no sandbox (with a warning).

    Raises
    ------
    GraderError
        ``bwrap`` or ``uid`` was asked for and does not work here, or the mode is unknown.
    """
    if requested not in MODES:
        raise GraderError(f"expected --sandbox to be one of {', '.join(MODES)}, got {requested!r}")
    if requested == "none":
        return SandboxSetting("none", UNSANDBOXED_WARNING)
    if requested == "uid":
        problem = uid_problem()
        if problem is not None:
            raise GraderError(f"--sandbox uid: {problem}. Fix: grade as root on Linux with"
                              " util-linux (setpriv, prlimit) installed, or use --sandbox bwrap")
        return SandboxSetting("uid", uid_warning())
    problem = bwrap_problem()
    if problem is None:
        return SandboxSetting("bwrap")
    if problem.startswith(PYTHON_PROBLEM):
        fix = (" Fix: report this as a grader bug with the message above; meanwhile install the"
               " grader into an environment outside /tmp, or pass --sandbox none.")
        if requested == "bwrap":
            raise GraderError(f"--sandbox bwrap: {problem}.{fix}")
        return SandboxSetting("none", f"{UNSANDBOXED_WARNING} (no sandbox: {problem}.{fix})")
    if requested == "bwrap" and problem.startswith(NAMESPACE_PROBLEM):
        raise GraderError(f"--sandbox bwrap: {problem}. Fix: allow the namespaces bubblewrap"
                          " needs (unprivileged user namespaces when not grading as root; in a"
                          " container, a seccomp/AppArmor profile that permits them), or grade"
                          " as root with --sandbox uid, or pass --sandbox none.")
    if requested == "bwrap":
        raise GraderError(f"--sandbox bwrap: {problem}. Fix: on Debian/Ubuntu `apt-get install"
                          " bubblewrap` (and allow unprivileged user namespaces when not"
                          " grading as root); on macOS grade inside a Linux container; or"
                          " pass --sandbox none to grade without isolation.")
    if uid_problem() is None:
        return SandboxSetting("uid", f"{uid_warning()} (bubblewrap unavailable: {problem})")
    return SandboxSetting("none", f"{UNSANDBOXED_WARNING} (bubblewrap unavailable: {problem})")
