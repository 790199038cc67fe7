"""Process management: the processes the benchmark starts (and only those are ever stopped), /proc readings.

A `Proc` is a long-running process (server, database) pinned to cores with
`taskset`, its output in a log file; `run_measured` runs a short command (a
load generator) and returns its output and its own CPU time. CPU time of
process trees and busy/steal time of cores come from /proc.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Finished:
    stdout: str
    stderr: str
    returncode: int
    cpu: float  # CPU seconds of the command (user + system), from wait4
    wall: float


def run_text(argv: list[str], timeout: float = 60) -> str:
    """stdout and stderr of a short command, or why it could not run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    return (done.stdout + done.stderr).strip()


def run_measured(argv: list[str], cpus: str, timeout: float, cwd: Path | None = None) -> Finished:
    """Run a command pinned to `cpus`; its output, exit code and own CPU time (wait4's rusage)."""
    began = time.perf_counter()
    process = subprocess.Popen(
        ["taskset", "-c", cpus, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    open_fds = {out_fd, err_fd}
    deadline = time.monotonic() + timeout
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            process.kill()
            break
        ready, _, _ = select.select(list(open_fds), [], [], min(left, 1.0))
        for fd in ready:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                open_fds.discard(fd)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    process.stderr.close()
    return Finished(
        b"".join(chunks[out_fd]).decode(errors="replace"),
        b"".join(chunks[err_fd]).decode(errors="replace"),
        process.returncode,
        usage.ru_utime + usage.ru_stime,
        time.perf_counter() - began,
    )


# --------------------------------------------------------------------------
# /proc: CPU and memory of processes, busy time of cores


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def core_times() -> dict[str, tuple[int, int, int]]:
    """Per core: (busy, total, steal) in clock ticks."""
    result = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in values[:8])
            busy = user + nice + system + irq + softirq
            result[name] = (busy, busy + idle + iowait + steal, steal)
    return result


# --------------------------------------------------------------------------
# Long-running processes


RUNNING: list[Proc] = []


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the service's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TODO_", "OTEL_", "PROMETHEUS_"))}
    env.update(extra)
    return env


class Proc:
    """A long-running process (server, database) pinned to `cpus`; output to a log file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        cpus: str,
        logs: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready_line: bool = False,
    ) -> None:
        self.name = name
        self.cpus = cpus
        self.log_path = logs / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.popen = subprocess.Popen(
            ["taskset", "-c", cpus, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if ready_line else self._log,
            stderr=self._log,
            env=env,
            cwd=cwd,
            start_new_session=True,  # a Ctrl-C of make reaches the runner, which stops them in order
        )
        self.pid = self.popen.pid
        RUNNING.append(self)

    def read_line(self, timeout: float) -> str:
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"{self.name} printed nothing in {timeout:.0f}s (log: {self.log_path})")
        return self.popen.stdout.readline().decode().strip()

    def pids(self) -> list[int]:
        return [self.pid, *descendants(self.pid)]

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids())

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()
        if self in RUNNING:
            RUNNING.remove(self)


def stop_all(keep: Proc | None = None) -> None:
    """Stop every process the benchmark started (newest first), except `keep`."""
    for proc in reversed(list(RUNNING)):
        if proc is not keep:
            proc.stop()


# --------------------------------------------------------------------------
# A CPU quota: a slower server core, for the overload section


class CpuQuota:
    """A cgroup that lets its processes use `percent` of one core, in periods of `period_us`.

    The overload section runs its servers in one so that ghz, on the other
    core, can offer several times their capacity: every cost keeps its share
    (a refused call still costs the same fraction of a served one), only the
    core is slower. cgroup v1's cpu controller (/sys/fs/cgroup/cpu) or v2's
    cpu.max; needs root. The cgroup is removed by `close()`.
    """

    def __init__(self, name: str, percent: float, period_us: int = 4000) -> None:
        # The kernel's least quota is 1 ms a period: a smaller share needs a longer period (longer stalls).
        period_us = max(period_us, round(1000 * 100 / percent))
        quota = max(1000, round(period_us * percent / 100))
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.path = v1 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            self._root = v1
        elif "cpu" in (v2 / "cgroup.controllers").read_text(errors="replace").split():
            self.path = v2 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{quota} {period_us}")
            self._root = v2
        else:
            raise RuntimeError("no cgroup cpu controller: the overload section needs one (and root) for its quota")
        self.percent = 100 * quota / period_us

    def add(self, proc: Proc) -> None:
        """Move `proc` (every thread of it, and what it starts later) into the quota."""
        (self.path / "cgroup.procs").write_text(str(proc.pid))

    def close(self) -> None:
        """Move whatever is left back to the root cgroup, then remove this one."""
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self._root / "cgroup.procs").write_text(pid)
            self.path.rmdir()
