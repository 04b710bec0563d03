"""Resolve a bare name of the package, as docstrings write it, to its API page.

Docstrings say :class:`BeamConfig` or :func:`parse_args` where the name is unambiguous in the
package; Sphinx only finds such a name when it is defined in the current module. When Sphinx
cannot resolve a Python reference, this handler looks for exactly one documented object of
``nanobrag_torch`` with that last name (or dotted tail) and links it; otherwise the reference
stays unresolved and the nitpicky build reports it.
"""

from __future__ import annotations

import re

from sphinx.util.nodes import make_refnode

PACKAGE = "nanobrag_torch"
_NAME = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*")


def resolve_bare_name(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~.")
    if not _NAME.fullmatch(target):
        return None
    domain = env.get_domain("py")
    suffix = "." + target
    matches = [name for name in domain.objects
               if name.startswith(PACKAGE + ".") and name.endswith(suffix) and not domain.objects[name].aliased]
    if len(matches) != 1:
        return None
    entry = domain.objects[matches[0]]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, matches[0])


def setup(app):
    app.connect("missing-reference", resolve_bare_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
