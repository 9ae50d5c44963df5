"""What one Gradescope submission costs under a container's CPU quota and memory limit.

For each lesson the autograder zip is built (``--bundle-data``), laid out as Gradescope lays
it out (``ROOT/source``, ``ROOT/run_autograder``) and set up once with the real ``setup.sh``
into one fresh virtual environment (the wheel and its pinned dependencies, the shared fast
copy). The lesson's solution is then graded by ``ROOT/run_autograder`` inside a control group
with a CPU quota (``--cpus``, e.g. 1 and 0.5 CPU) and a memory limit (``--memory-mb``),
recording the wall time, the group's peak memory (cgroup v1 ``memory.max_usage_in_bytes``, v2
``memory.peak``: every process of the run, page cache included, as a container's limit
counts it), whether the limit was hit, and the score results.json gives.

Run as root (control groups)::

    python bench/gradescope_limits.py --cpus 1 0.5 [--full] [--modules 01 02 03 04]

The table goes to ``bench/results/gradescope_limits.md`` (appended per run, with the machine
and load average) and the raw numbers to ``bench/results/gradescope_limits.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PERIOD_US = 100_000


def _cgroup_dirs() -> dict[str, Path]:
    """Where this process's cpu and memory groups are (v1: one hierarchy each; v2: one)."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        number, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if number != "0" else ["v2"]:
            own[name] = path.lstrip("/")
    base = Path("/sys/fs/cgroup")
    if (base / "memory" / "memory.max_usage_in_bytes").exists():
        return {"cpu": base / "cpu" / own["cpu"], "cpuacct": base / "cpuacct" / own["cpuacct"],
                "memory": base / "memory" / own["memory"]}
    if (base / "cgroup.controllers").exists():
        return {"v2": base / own["v2"]}
    raise SystemExit("no cgroup v1 cpu/memory hierarchy and no cgroup v2 here")


class Limits:
    """A control group (made under this process's own) with a CPU quota and memory limit."""

    def __init__(self, cpus: float, memory_mb: int) -> None:
        name = f"dlcourse-bench-gs-{os.getpid()}-{time.monotonic_ns()}"
        self.dirs = {key: folder / name for key, folder in _cgroup_dirs().items()}
        for folder in self.dirs.values():
            folder.mkdir()
        quota, limit = str(int(cpus * PERIOD_US)), str(memory_mb * 2**20)
        if "v2" in self.dirs:
            group = self.dirs["v2"]
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (group / "memory.max").write_text(limit)
            (group / "memory.swap.max").write_text("0")
        else:
            (self.dirs["cpu"] / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.dirs["cpu"] / "cpu.cfs_quota_us").write_text(quota)
            (self.dirs["memory"] / "memory.limit_in_bytes").write_text(limit)

    def join(self) -> None:
        """Move the calling process into the group (a child's ``preexec_fn``)."""
        for folder in self.dirs.values():
            (folder / "cgroup.procs").write_text(str(os.getpid()))

    def peak_bytes(self) -> int:
        if "v2" in self.dirs:
            return int((self.dirs["v2"] / "memory.peak").read_text())
        return int((self.dirs["memory"] / "memory.max_usage_in_bytes").read_text())

    def cpu_seconds(self) -> float:
        """CPU time every process of the group used (user + system)."""
        if "v2" in self.dirs:
            usage = dict(line.split() for line in
                         (self.dirs["v2"] / "cpu.stat").read_text().splitlines())
            return int(usage["usage_usec"]) / 1e6
        return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9

    def throttled_seconds(self) -> float:
        """Time the quota held the group back (0: the quota never bound)."""
        folder = self.dirs.get("v2", self.dirs.get("cpu"))
        stats = dict(line.split() for line in (folder / "cpu.stat").read_text().splitlines())
        if "throttled_usec" in stats:
            return int(stats["throttled_usec"]) / 1e6
        return int(stats.get("throttled_time", 0)) / 1e9

    def limit_hits(self) -> int:
        """Times the memory limit was reached (v1 failcnt; v2 the ``max`` events)."""
        if "v2" in self.dirs:
            events = dict(line.split() for line in
                          (self.dirs["v2"] / "memory.events").read_text().splitlines())
            return int(events.get("max", 0))
        return int((self.dirs["memory"] / "memory.failcnt").read_text())

    def oom_kills(self) -> int:
        name = "memory.events" if "v2" in self.dirs else "memory.oom_control"
        folder = self.dirs.get("v2", self.dirs.get("memory"))
        fields = dict(line.split() for line in (folder / name).read_text().splitlines())
        return int(fields.get("oom_kill", 0))

    def remove(self) -> None:
        for folder in self.dirs.values():
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.2)


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}"
                         f"\n{done.stderr[-3000:]}")
    return done


def prepare(module: str, full: bool, work: Path, python: str) -> Path:
    """Build the lesson's zip, lay it out as Gradescope does and run the real setup.sh."""
    archive = work / f"ag{module}.zip"
    _run([sys.executable, "-m", "grader", "gradescope", "build", module, str(archive),
          "--bundle-data", *(["--full"] if full else [])], cwd=REPO)
    root = work / f"autograder{module}"
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            zf.extract(info, root / "source")
            os.chmod(root / "source" / info.filename, (info.external_attr >> 16) & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    env = dict(os.environ, DLCOURSE_AUTOGRADER_ROOT=str(root), DLCOURSE_PYTHON=python)
    _run(["bash", str(root / "source" / "setup.sh")], cwd=root / "source", env=env)
    archive.unlink()
    return root


def grade_once(root: Path, module: str, python: str, cpus: float, memory_mb: int) -> dict:
    """Grade the lesson's solution with ROOT/run_autograder inside the limits."""
    solution = next((REPO / "solutions").glob(f"{module}_*.ipynb"))
    shutil.rmtree(root / "submission", ignore_errors=True)
    shutil.rmtree(root / "results", ignore_errors=True)
    (root / "submission").mkdir()
    shutil.copy(solution, root / "submission" / solution.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DLCOURSE_")}
    env.update(DLCOURSE_AUTOGRADER_ROOT=str(root), DLCOURSE_PYTHON=python)
    limits = Limits(cpus, memory_mb)
    try:
        start = time.perf_counter()
        done = subprocess.run([str(root / "run_autograder")], cwd=root, env=env,
                              preexec_fn=limits.join, capture_output=True, text=True)
        wall = time.perf_counter() - start
        result = json.loads((root / "results" / "results.json").read_text())
        row = {"module": module, "cpus": cpus, "memory_limit_mb": memory_mb,
               "wall_s": round(wall, 1), "cpu_s": round(limits.cpu_seconds(), 1),
               "throttled_s": round(limits.throttled_seconds(), 1),
               "peak_mb": round(limits.peak_bytes() / 2**20),
               "limit_hits": limits.limit_hits(), "oom_kills": limits.oom_kills(),
               "score": result["score"],
               "max": sum(t["max_score"] for t in result["tests"]),
               "execution_time": result["execution_time"], "exit": done.returncode,
               "load_after": round(os.getloadavg()[0], 2)}
    finally:
        limits.remove()
    return row


def _table(rows: list[dict], full: bool, commit: str, load_before: float) -> str:
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [f"## {'Full' if full else 'Fast'} mode, commit {commit}", "",
             f"Machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}),"
             f" Python {platform.python_version()}, {ram_gb:.0f} GB RAM,"
             f" shared with other jobs; load average {load_before:.2f} before the first run."
             f" `python bench/gradescope_limits.py {' '.join(sys.argv[1:])}`; one run each.", "",
             "| lesson | CPU quota | wall s | CPU s | throttled s | peak memory MB | limit hits |"
             " OOM kills | points | load after |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['module']} | {r['cpus']:g} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} |"
                     f" {r['throttled_s']:.0f} | {r['peak_mb']} |"
                     f" {r['limit_hits']} | {r['oom_kills']} | {r['score']:g} of {r['max']:g} |"
                     f" {r['load_after']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", nargs="+", default=["01", "02", "03", "04"])
    parser.add_argument("--cpus", nargs="+", type=float, default=[1.0, 0.5])
    parser.add_argument("--memory-mb", type=int, default=6144)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--venv", type=Path, default=None,
                        help="a virtual environment setup.sh installed into (reused); default:"
                        " a fresh one")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the limits are control groups")
    commit = _run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO).stdout.strip()
    load_before = os.getloadavg()[0]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="dlcourse-bench-gs-") as tmp:
        work = Path(tmp)
        venv = args.venv or work / "venv"
        if not (venv / "bin" / "python").exists():
            _run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        for module in args.modules:
            root = prepare(module, args.full, work, python)
            for cpus in args.cpus:
                row = grade_once(root, module, python, cpus, args.memory_mb)
                print(json.dumps(row), flush=True)
                rows.append(row)
            shutil.rmtree(root)
    raw = RESULTS / "gradescope_limits.json"
    previous = json.loads(raw.read_text()) if raw.exists() else []
    raw.write_text(json.dumps(previous + [{"commit": commit, "full": args.full, "rows": rows}],
                              indent=1) + "\n")
    text = _table(rows, args.full, commit, load_before)
    md = RESULTS / "gradescope_limits.md"
    head = "# One Gradescope submission under a CPU quota and a memory limit\n\n"
    md.write_text((md.read_text() if md.exists() else head) + "\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
