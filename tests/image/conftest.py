"""Fixtures for the built image (tests/image runs only through `make image-test`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.image import BASE_ENV, image_name, inspect, podman


@pytest.fixture(scope="session")
def image() -> str:
    return image_name()


@pytest.fixture(scope="session")
def base_image() -> str:
    return image_name(BASE_ENV)


@pytest.fixture(scope="session")
def config(image: str) -> dict[str, Any]:
    """`podman image inspect`: the image's configuration as a runtime reads it."""
    return inspect(image)


@pytest.fixture(scope="session")
def rootfs(image: str) -> Iterator[Path]:
    """The image's root filesystem, mounted read-only by podman."""
    path = Path(podman("image", "mount", image).stdout.strip())
    try:
        yield path
    finally:
        podman("image", "unmount", image, check=False)
