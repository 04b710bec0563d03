"""The gallery's execution-time pages without scripts from the network.

sphinx-gallery writes every ``sg_execution_times.rst`` with a raw HTML block that loads
jQuery, DataTables and Bootstrap from CDNs, to make the table sortable. This site is read
offline too and loads nothing remote, so :func:`drop_remote_assets` removes that block when
Sphinx reads the page; the table stays, unsorted by the browser (it is already sorted by
time).
"""

from __future__ import annotations

import re
from typing import List

_REMOTE_BLOCK = re.compile(r"\n  \.\. raw:: html\n\n(?:    .*\n|\n)*?(?=  \.\. list-table::)")


def drop_remote_assets(app, docname: str, source: List[str]) -> None:
    """``source-read`` handler: remove the CDN block of an execution-time page."""
    if docname.rsplit("/", 1)[-1] == "sg_execution_times":
        source[0] = _REMOTE_BLOCK.sub("\n", source[0])


def setup(app):
    app.connect("source-read", drop_remote_assets)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
