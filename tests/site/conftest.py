"""Checks of the built documentation site, run by ``tox -e docs`` after the build.

They need ``--site-dir`` (the built HTML folder); without it they are skipped, so that
``tox -e py`` does not depend on a docs build.
"""

from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--site-dir", default=None, help="folder of the built HTML site to check")


@pytest.fixture(scope="session")
def site_dir(request) -> Path:
    value = request.config.getoption("--site-dir")
    if value is None:
        pytest.skip("built-site checks need --site-dir (tox -e docs passes it)")
    path = Path(value)
    assert (path / "index.html").is_file(), f"{path} holds no built site (no index.html)"
    return path
