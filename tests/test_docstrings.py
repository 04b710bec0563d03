"""Docstrings: the shared descriptions of ``fill_doc``, and every public callable of the checked
modules documented in NumPy style (Parameters, Returns or Yields, Raises)."""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import inspect
import pydoc
import re
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from nanobrag_torch import _docs
from nanobrag_torch._docs import docdict, fill_doc, fill_docstring

CHECKED_MODULES = (
    "nanobrag_torch._docs",
    "nanobrag_torch.conventions",
    "nanobrag_torch.geometry",
    "nanobrag_torch.physics",
    "nanobrag_torch.rng",
    "nanobrag_torch.noise",
    "nanobrag_torch.constants",
    "nanobrag_torch.kernels",
    "nanobrag_torch.plotting",
    "nanobrag_torch.layout",
    "nanobrag_torch.prepared",
    "nanobrag_torch.render",
    "nanobrag_torch.pixel_physics",
    "nanobrag_torch.c_quirks",
    "nanobrag_torch.models.beam",
    "nanobrag_torch.models.detector",
    "nanobrag_torch.io",
    "nanobrag_torch.io.mosflm",
    "nanobrag_torch.io.smv",
    "nanobrag_torch.io.pgm",
    "nanobrag_torch.io.sourcefile",
    "nanobrag_torch.io.atomic",
    "nanobrag_torch.io.text",
    "nanobrag_torch.refine.likelihoods",
    "nanobrag_torch.refine.progress",
    "nanobrag_torch.cli",
    "nanobrag_torch.cli.report",
    "nanobrag_torch.cli.plan",
    "nanobrag_torch.cli.options",
    "nanobrag_torch.config",
    "nanobrag_torch.simulator",
    "nanobrag_torch.datasets",
    "nanobrag_torch.symmetry",
    "nanobrag_torch.refine.merging",
    "nanobrag_torch.refine.dataset",
    "nanobrag_torch.refine.shot_work",
    "nanobrag_torch.refine.amplitudes",
    "nanobrag_torch.refine.runners",
    "nanobrag_torch.refine.checkpoint",
    "nanobrag_torch.refine.reflections",
    "nanobrag_torch.refine.parameters",
    "nanobrag_torch.refine.jacobian",
    "nanobrag_torch",
    "nanobrag_torch.__main__",
    "nanobrag_torch.models",
    "nanobrag_torch._bragg_kernels",
    "nanobrag_torch._noise_kernels",
    "nanobrag_torch._numba",
    "nanobrag_torch.refine",
    "nanobrag_torch.refine.spots",
    "nanobrag_torch.refine.pixels",
    "nanobrag_torch.refine.result",
    "nanobrag_torch.refine.model",
    "nanobrag_torch.refine.indexing",
    "nanobrag_torch.refine.spot_fit",
    "nanobrag_torch.refine.solver",
    "nanobrag_torch.structure_factors",
    "nanobrag_torch.io.hkl",
    "nanobrag_torch.models.crystal",
    "nanobrag_torch.cli.simulate",
    "nanobrag_torch.io.dials",
    "nanobrag_torch.io.images",
    "nanobrag_torch.io.mtz",
)
"""Modules whose public callables :func:`test_public_callables_are_documented` checks. Extend
this tuple as more modules get complete docstrings."""

_PLACEHOLDER_LINE = re.compile(r"^[ \t]*%\((\w+)\)s[ \t]*$", re.MULTILINE)


# ----------------------------------------------------------------------------- fill_doc
def _indented_doc():
    @fill_doc
    def function(convention, fpixels, spixels):
        """Summary.

        Parameters
        ----------
        %(convention)s
        %(fpixels_spixels)s
        extra : int
            Not shared.

        Returns
        -------
        int
        """
    return function


def test_fill_doc_substitutes_with_the_placeholder_indentation():
    doc = _indented_doc().__doc__
    assert "%(" not in doc
    lines = doc.splitlines()
    start = lines.index("        convention : DetectorConvention")
    description = textwrap.dedent(docdict["convention"]).strip("\n").splitlines()[1:]
    assert lines[start + 1:start + 1 + len(description)] == ["        " + line for line in description]
    assert "        fpixels, spixels : int" in lines
    assert "        extra : int" in lines


def test_fill_doc_output_parses_as_numpy_sections():
    sections = _sections(_indented_doc().__doc__)
    names = [name for name, _ in _entries(sections["Parameters"])]
    assert names == ["convention", "fpixels", "spixels", "extra"]
    assert all(description for _, description in _entries(sections["Parameters"]))


def test_fill_doc_on_classes_methods_properties_and_static_methods():
    @fill_doc
    class Thing:
        """A thing.

        Parameters
        ----------
        %(device)s
        """

        def __init__(self, device=None):
            self.device = device

        @fill_doc
        def method(self, expected):
            """A method.

            Parameters
            ----------
            %(expected)s
            """

        @property
        @fill_doc
        def value(self) -> int:
            """A value.

            %(dtype)s
            """
            return 1

        @fill_doc
        @staticmethod
        def static(roi):
            """A static method.

            Parameters
            ----------
            %(roi)s
            """

    for doc in (Thing.__doc__, Thing.method.__doc__, Thing.value.__doc__, Thing.static.__doc__):
        assert "%(" not in doc
    assert "device : torch.device" in Thing.__doc__
    assert "expected : tensor" in Thing.method.__doc__
    assert "dtype : torch.dtype" in inspect.getdoc(Thing.value)
    assert "roi : tuple of 4 ints" in Thing.static.__doc__
    assert Thing().value == 1


def test_fill_doc_keeps_help_and_the_signature():
    from nanobrag_torch.conventions import default_beam_center_mm

    text = pydoc.render_doc(default_beam_center_mm, renderer=pydoc.plaintext)
    assert "default_beam_center_mm(convention" in text
    assert "pixel_size_mm : float" in text and "%(" not in text
    assert inspect.getdoc(default_beam_center_mm).splitlines()[0].startswith("The beam centre")


def test_fill_doc_output_reads_as_napoleon_fields():
    """Sphinx's napoleon turns every filled entry into a parameter field with its type."""
    napoleon = pytest.importorskip("sphinx.ext.napoleon")
    from nanobrag_torch.models.detector import Detector

    config = napoleon.Config(napoleon_use_rtype=False, napoleon_google_docstring=False)
    text = str(napoleon.NumpyDocstring(inspect.getdoc(Detector), config))
    for name, kind in (("config", "DetectorConfig"), ("device", "torch.device or str, optional"),
                       ("dtype", "torch.dtype, optional")):
        assert f":param {name}: " in text and f":type {name}: {kind}" in text
    assert "%(" not in text


def test_fill_doc_refuses_unknown_keys_and_inline_placeholders():
    with pytest.raises(KeyError, match="no_such_key"):
        fill_docstring("Summary.\n\n    %(no_such_key)s\n")
    with pytest.raises(ValueError, match="alone on its line"):
        fill_docstring("Summary with %(device)s inline.\n")
    assert fill_docstring("Percent 100 % and %d stay.\n") == "Percent 100 % and %d stay.\n"


def test_fill_doc_under_optimisation_without_docstrings():
    def function():
        pass

    assert fill_doc(function) is function and function.__doc__ is None


def test_every_shared_entry_is_numpy_entries_with_descriptions():
    """Each text is entries of a section: an unindented ``name : type`` (or a Returns type)
    line, then its description indented by 4; every entry has one."""
    for key, text in docdict.items():
        lines = textwrap.dedent(text).strip("\n").splitlines()
        assert lines and not lines[0][0].isspace(), key
        for line, following in zip(lines, lines[1:] + [""]):
            assert not line[0].isspace() or line.startswith("    "), (key, line)
            if not line[0].isspace():
                assert following.startswith("    "), (key, f"{line!r} has no description")


def test_every_shared_entry_is_used():
    """A description nobody uses is dead text: every key is the placeholder of some docstring."""
    used = set()
    for source in Path(_docs.__file__).parent.rglob("*.py"):
        if source.name != "_docs.py":
            used.update(_PLACEHOLDER_LINE.findall(source.read_text()))
    assert sorted(set(docdict) - used) == []


def test_no_placeholder_is_left_unfilled():
    """A placeholder in a docstring that ``fill_doc`` does not decorate stays as it was written:
    every module that writes one has no ``%(key)s`` left in any docstring, private ones too."""
    package = Path(_docs.__file__).parent
    for source in sorted(package.rglob("*.py")):
        if source.name == "_docs.py" or not _PLACEHOLDER_LINE.search(source.read_text()):
            continue
        parts = source.relative_to(package.parent).with_suffix("").parts
        module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for name, obj in _all_documented(module):
            assert not re.search(r"%\(\w+\)s", obj.__doc__ or ""), f"{name}: placeholder left unfilled"


def _all_documented(module) -> Iterator[Tuple[str, object]]:
    """Every function, class, method and property getter defined in ``module``, private ones too."""
    for name, obj in vars(module).items():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj
        elif inspect.isclass(obj):
            yield f"{module.__name__}.{name}", obj
            for member_name, member in vars(obj).items():
                member = member.fget if isinstance(member, property) else member
                member = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if inspect.isfunction(member):
                    yield f"{module.__name__}.{name}.{member_name}", member


# ----------------------------------------------------------------------------- the checker
_SECTION = re.compile(r"^([A-Z][A-Za-z ]+)\n-{3,}$", re.MULTILINE)


def _sections(doc: str) -> Dict[str, str]:
    """The NumPy sections of a docstring by title, each its dedented body."""
    doc = inspect.cleandoc(doc)
    matches = list(_SECTION.finditer(doc))
    return {match.group(1): textwrap.dedent(doc[match.end():following.start() if following else len(doc)]).strip("\n")
            for match, following in zip(matches, matches[1:] + [None])}


def _entries(body: str) -> List[Tuple[str, str]]:
    """``(name, description)`` of every entry of a Parameters-like section; ``a, b : int`` gives two."""
    entries, current = [], None
    for line in body.splitlines():
        if line and not line[0].isspace():
            current = [line.split(" : ")[0], []]
            entries.append(current)
        elif current is not None and line.strip():
            current[1].append(line.strip())
    return [(name.strip().lstrip("*"), " ".join(text)) for names, text in entries for name in names.split(",")]


def _public_callables() -> Iterator[Tuple[str, object, str]]:
    """``(qualified name, object, kind)`` of every public function, class, method and property
    defined in :data:`CHECKED_MODULES` (kind: function, class, method or property)."""
    for module_name in CHECKED_MODULES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
                continue
            if inspect.isclass(obj):
                yield f"{module_name}.{name}", obj, "class"
                for member_name, member in vars(obj).items():
                    if member_name.startswith("_"):
                        continue
                    qualified = f"{module_name}.{name}.{member_name}"
                    if isinstance(member, property):
                        yield qualified, member, "property"
                    elif isinstance(member, (staticmethod, classmethod)):
                        yield qualified, member.__func__, "static" if isinstance(member, staticmethod) else "method"
                    elif inspect.isfunction(member):
                        yield qualified, member, "method"
            elif inspect.isfunction(obj):
                yield f"{module_name}.{name}", obj, "function"


def _function_node(function) -> ast.AST:
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(function)))
    return next(node for node in ast.walk(ast.parse(source))
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, not those of functions or classes defined inside it."""
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            yield child
            yield from _own_nodes(child)


def _returns_something(function) -> bool:
    """From the return annotation (``None`` or ``NoReturn``: nothing), else from the source: a
    ``return`` with a value, or a ``yield``."""
    annotation = inspect.signature(function).return_annotation
    if annotation is not inspect.Signature.empty:
        return annotation not in (None, "None", "NoReturn", "typing.NoReturn")
    return any((isinstance(node, ast.Return) and node.value is not None
                and not (isinstance(node.value, ast.Constant) and node.value.value is None))
               or isinstance(node, (ast.Yield, ast.YieldFrom)) for node in _own_nodes(_function_node(function)))


def _raises(function) -> bool:
    """Whether the function's own body raises an exception (a bare ``raise`` re-raises one)."""
    return any(isinstance(node, ast.Raise) and node.exc is not None
               for node in _own_nodes(_function_node(function)))


def _arguments(callable_, bound: bool) -> List[str]:
    try:
        signature = inspect.signature(callable_)
    except ValueError:  # a class with a built-in constructor (an exception): nothing to document
        return []
    names = []
    for index, parameter in enumerate(signature.parameters.values()):
        if bound and index == 0:
            continue  # self or cls
        names.append(parameter.name)
    return names


def _problems(qualified: str, obj, kind: str) -> List[str]:
    doc = inspect.getdoc(obj.fget if kind == "property" else obj)
    if not doc or not doc.strip().splitlines()[0].strip():
        return [f"{qualified}: no summary line"]
    if kind == "property":
        annotation = inspect.signature(obj.fget).return_annotation
        return [] if annotation is not inspect.Signature.empty else [f"{qualified}: property without a type "
                                                                     "(return annotation)"]
    sections = _sections(doc)
    problems = []
    if kind == "class":
        if issubclass(obj, enum.Enum):
            arguments = []  # looked up by value, not constructed: its members are its documentation
        else:
            arguments = _arguments(obj, bound=False) if obj.__init__ is not object.__init__ else []
        titles = ("Parameters", "Attributes") if dataclasses.is_dataclass(obj) else ("Parameters",)
        documented = [entry for title in titles for entry in _entries(sections.get(title, ""))]
    else:
        arguments = _arguments(obj, bound=kind == "method")
        documented = _entries(sections.get("Parameters", ""))
    names = {name for name, _ in documented}
    missing = [name for name in arguments if name not in names]
    if missing:
        problems.append(f"{qualified}: parameters not documented: {', '.join(missing)}")
    if kind != "class":
        stale = [name for name in sorted(names) if name not in arguments]
        if stale:
            problems.append(f"{qualified}: documents parameters it does not take: {', '.join(stale)}")
    bare = [name for name, description in documented if name in arguments and not description]
    if bare:
        problems.append(f"{qualified}: parameters without a description: {', '.join(bare)}")
    if kind != "class":
        if _returns_something(obj) and not {"Returns", "Yields"} & set(sections):
            problems.append(f"{qualified}: no Returns (or Yields) section")
        if _raises(obj) and "Raises" not in sections:
            problems.append(f"{qualified}: raises, but has no Raises section")
    return problems


def test_the_checker_sees_what_is_missing():
    def undocumented(a, b):
        """Summary only."""
        if a:
            raise ValueError("a")
        return a + b

    def documented(a, b) -> int:
        """Summary.

        Parameters
        ----------
        a, b : int
            Numbers.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            ``a`` is true.
        """
        if a:
            raise ValueError("a")
        return a + b

    def procedure(a) -> None:
        """Summary.

        Parameters
        ----------
        a : int
        """

    assert _problems("undocumented", undocumented, "function") == [
        "undocumented: parameters not documented: a, b", "undocumented: no Returns (or Yields) section",
        "undocumented: raises, but has no Raises section"]
    assert _problems("documented", documented, "function") == []
    assert _problems("procedure", procedure, "function") == ["procedure: parameters without a description: a"]

    def stale(a) -> None:
        """Summary.

        Parameters
        ----------
        a, b : int
            Numbers.
        """

    assert _problems("stale", stale, "function") == ["stale: documents parameters it does not take: b"]


def test_the_checker_walks_every_kind():
    kinds = {kind for _, _, kind in _public_callables()}
    assert {"function", "class", "method", "property"} <= kinds


def test_public_callables_are_documented():
    problems = [problem for qualified, obj, kind in _public_callables() for problem in _problems(qualified, obj, kind)]
    assert problems == [], "\n".join(problems)
