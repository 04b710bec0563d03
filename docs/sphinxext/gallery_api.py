"""Each gallery example lists the ``nanobrag_torch`` API it uses.

sphinx-gallery records, for every example it runs, the names the example's code and text
refer to (``<example>.codeobj.json`` next to the generated page) and from them writes the
backreferences that the API pages show as "Examples using …". This extension reads the same
record when Sphinx reads an example's page and adds the reverse list, "The nanobrag_torch API
on this page", linking every class and function of the package that has an API page (a
method counts as its class).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

PACKAGE = "nanobrag_torch"
HEADING = f"The {PACKAGE} API on this page"


def _documented(srcdir: Path, module: str, name: str) -> List[str]:
    """The objects with an API page that ``module.name`` stands for (itself, or its class)."""
    candidates = [f"{module}.{name}"]
    if "." in name:
        candidates.append(f"{module}.{name.split('.')[0]}")
    return [full for full in candidates if (srcdir / "generated" / f"{full}.rst").is_file()][:1]


def api_used(srcdir: Path, docname: str) -> List[str]:
    """Full names of the documented package objects an example uses, sorted."""
    record = srcdir / f"{docname}.codeobj.json"
    if not record.is_file():
        return []
    names = set()
    for candidates in json.loads(record.read_text(encoding="utf-8")).values():
        for code_object in candidates:
            module = code_object["module"]
            if module == PACKAGE or module.startswith(PACKAGE + "."):
                names.update(_documented(srcdir, module, code_object["name"]))
    return sorted(names)


def list_api_used(app, docname: str, source: List[str]) -> None:
    """``source-read`` handler: add the API list to an example page, before its downloads."""
    gallery_dirs = app.config.sphinx_gallery_conf["gallery_dirs"]
    gallery_dirs = [gallery_dirs] if isinstance(gallery_dirs, str) else list(gallery_dirs)
    folder, _, stem = docname.rpartition("/")
    if not stem.startswith("plot_") or not any(folder == g or folder.startswith(g + "/") for g in gallery_dirs):
        return
    names = api_used(Path(app.srcdir), docname)
    if not names:
        return
    block = "\n".join([".. rubric:: " + HEADING, "", *(f"* :py:obj:`{name}`" for name in names), "", ""])
    label = f".. _sphx_glr_download_{docname.replace('/', '_')}.py:"
    text = source[0]
    at = text.find(label)
    source[0] = text + "\n\n" + block if at < 0 else text[:at] + block + "\n" + text[at:]


def setup(app):
    app.connect("source-read", list_api_used)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
