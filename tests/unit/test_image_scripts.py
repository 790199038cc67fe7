"""The image step's scripts, run for real where it costs nothing: who may build, and which Debian mirror.

The image itself is built and tested by `make image-test` (tests/image).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO

PREFLIGHT = REPO / "scripts" / "image-preflight.sh"
IMAGE_BASE = REPO / "scripts" / "image-base.sh"


def as_another_user(argv: list[str]) -> list[str]:
    """`argv` run by a user other than root: this one when it is not root, else `nobody` through setpriv."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to run the script as a user other than root")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv]


def test_without_root_the_image_step_stops_with_one_message_saying_what_to_run() -> None:
    result = subprocess.run(
        as_another_user([str(PREFLIGHT), "--after-checks"]), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    message = result.stderr
    assert message.startswith("make check: every check and test passed except the container image")
    assert "sudo make image-test" in message
    assert "make check-no-image" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="the root half of the preflight needs root; the other half ran above")
def test_as_root_the_image_step_goes_on_silently() -> None:
    result = subprocess.run([str(PREFLIGHT)], capture_output=True, text=True, timeout=30, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def mirror(environment: dict[str, str]) -> str:
    env = {"PATH": os.environ["PATH"], **environment}
    result = subprocess.run(
        [str(IMAGE_BASE), "--mirror"], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.strip()


def apt_config(tmp_path: Path, sources: str) -> dict[str, str]:
    """An APT_CONFIG whose only sources are `sources` (deb822), as a machine's /etc/apt would hold them."""
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    (parts / "debian.sources").write_text(sources)
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::Etc::sourcelist "{tmp_path}/sources.list";\nDir::Etc::sourceparts "{parts}";\n')
    return {"APT_CONFIG": str(config)}


def test_the_debian_mirror_is_the_one_apt_uses_for_bookworm(tmp_path: Path) -> None:
    if shutil.which("apt-get") is None:
        pytest.fail("apt-get is needed: the stand-in base is built from Debian's packages")
    sources = (
        "Types: deb\nURIs: http://security.mirror.test/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert mirror(apt_config(tmp_path, sources)) == "http://mirror.test/debian/"


def test_the_variable_overrides_it_and_deb_debian_org_is_the_fallback(tmp_path: Path) -> None:
    without_bookworm = apt_config(
        tmp_path, "Types: deb\nURIs: http://other.test/ubuntu\nSuites: noble\nComponents: main\n"
    )
    assert mirror(without_bookworm) == "http://deb.debian.org/debian"
    assert (
        mirror({**without_bookworm, "TODO_DEBIAN_MIRROR": "http://chosen.test/debian"}) == "http://chosen.test/debian"
    )
