"""Set-up and description of the machine: load generators, the benchmark-only virtualenvs, versions.

Extra Python packages go to separate venvs under benchmarks/.venv-* (made with
the project's pinned uv, reused while their requirements are unchanged), never
to .venv.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.common import PINNED_GRPCIO, REPO, log
from benchmarks.context import Bench
from benchmarks.procs import run_text


def ensure_load_generators() -> None:
    """h2load and wrk, installed with apt-get when missing (as root; otherwise say what to install)."""
    missing = [name for name, tool in (("nghttp2-client", "h2load"), ("wrk", "wrk")) if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"install {' '.join(missing)} (Debian: apt-get install -y {' '.join(missing)})")
    log(f"installing {' '.join(missing)} with apt-get (Debian packages)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", *missing]
    if subprocess.run(install, env=env, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def _uv_env() -> dict[str, str]:
    return {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": ""}


def make_venv(uv: str, path: Path, requirements: list[str]) -> Path:
    """A venv at `path` with exactly `requirements` (uv, from PyPI); reused when it is already complete."""
    python = path / "bin" / "python"
    stamp = path / ".requirements"
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"creating {path.relative_to(REPO)}: {' '.join(r for r in requirements if not r.startswith('-'))}")
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([uv, "venv", "-q", "--python", "python3.11", str(path)], env=_uv_env(), check=True)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *requirements], env=_uv_env(), check=True)
    stamp.write_text(wanted)
    return python


def latest_version(uv: str, package: str) -> str:
    """The newest release of `package` that installs on Python 3.11 (uv's resolver, one look-up)."""
    done = subprocess.run(
        [uv, "pip", "compile", "-q", "--no-header", "--no-annotate", "--no-deps", "--python-version", "3.11", "-"],
        input=f"{package}\n",
        capture_output=True,
        text=True,
        env=_uv_env(),
        check=True,
    )
    match = re.search(rf"^{package}==(\S+)$", done.stdout, re.M)
    if match is None:
        raise RuntimeError(f"cannot resolve the latest {package}: {done.stdout} {done.stderr}")
    return match[1]


def installed_version(python: Path | str, module: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({module!r}))"
    return run_text([str(python), "-c", code]).splitlines()[-1]


def machine_info() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    memory = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    return {
        "cpu_model": model[1].strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory[1]) / 1024 / 1024, 1) if memory else None,
        "kernel": platform.release(),
        "os": run_text(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "hypervisor": "yes" if "hypervisor" in cpuinfo else "no",
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def tool_info(bench: Bench) -> dict[str, Any]:
    return {
        "h2load": run_text([bench.h2load_bin, "--version"]).splitlines()[0],
        "wrk": run_text([bench.wrk_bin, "-v"]).splitlines()[0].split(" [")[0],
        "uv": run_text([bench.options.uv, "--version"]),
        "grpcio (pinned, .venv)": PINNED_GRPCIO,
        "protobuf (.venv)": installed_version(bench.python, "protobuf"),
        "motor": installed_version(bench.python, "motor"),
        "pymongo": installed_version(bench.python, "pymongo"),
        "uvloop": installed_version(bench.python, "uvloop"),
        "prometheus-client": installed_version(bench.python, "prometheus-client"),
        "taskset": run_text(["taskset", "--version"]),
    }
