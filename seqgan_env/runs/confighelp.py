"""A compact help for a nested dataclass config: one line per field, grouped by section.

``seqgan-env train --help`` prints it for ``TrainConfig``: each ``--section.field`` option once, with
its type (choices for a ``Literal``), its default and the first sentence of its doc. The doc of a field
is, in this order: a comment on the field's own line, its ``Attributes:`` entry in the class docstring,
the string literal right after it (an attribute docstring), or the first sentence of the class
docstring that names it.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from typing import Any, Iterator


@dataclasses.dataclass(frozen=True)
class FieldHelp:
    """One leaf field: its dotted key (``reward.mode``), its type, its default value and one line of doc."""

    key: str
    type: Any
    default: Any
    doc: str

    @property
    def flag(self) -> str:
        """The option: ``--reward.update-every`` (underscores become hyphens, as tyro spells them)."""
        return "--" + self.key.replace("_", "-")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _own_fields(config: Any) -> Iterator[tuple[FieldHelp, bool]]:
    """``config``'s own init fields, each with whether it is a nested config section (a dataclass)."""
    cls = type(config)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.init:
            yield (FieldHelp(f.name, hints[f.name], getattr(config, f.name), docs.get(f.name, "")),
                   _is_dataclass_type(hints[f.name]))


def iter_fields(config: Any, prefix: str = "") -> Iterator[FieldHelp]:
    """The leaf fields of dataclass instance ``config`` (nested sections walked in order), with their values."""
    for field_help, nested in _own_fields(config):
        if nested:
            yield from iter_fields(field_help.default, f"{prefix}{field_help.key}.")
        else:
            yield dataclasses.replace(field_help, key=prefix + field_help.key)


def sections(config: Any) -> list[tuple[str, str, list[FieldHelp]]]:
    """``[(section, its one-line doc, its fields)]``: the top-level fields first (section ""), then each nested one."""
    top, nested = [], []
    for field_help, is_section in _own_fields(config):
        if is_section:
            value = field_help.default
            nested.append((field_help.key, first_sentence(inspect.getdoc(type(value)) or ""),
                           list(iter_fields(value, field_help.key + "."))))
        else:
            top.append(field_help)
    return [("", first_sentence(inspect.getdoc(type(config)) or ""), top), *nested]


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` on one line, reST markup (````x````, :func:) dropped."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    text = " ".join(text.replace("``", "").split())
    match = re.search(r"(?<!e\.g)(?<!i\.e)(?<!\bvs)\.(\s|$)", text)
    return text[: match.start() + 1] if match else text


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """``{field: one line of doc}`` for dataclass ``cls`` (see the module docstring for where each comes from)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    names = [f.name for f in dataclasses.fields(cls)]
    comments: dict[int, str] = {}  # line -> the comment that ends it
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(tok.start[0])
    body = ast.parse(source).body[0].body
    attrs = _attributes_section(inspect.getdoc(cls) or "")
    docs: dict[str, str] = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        after = body[i + 1] if i + 1 < len(body) else None
        if node.end_lineno in comments:  # a comment on the field's (last) line
            docs[name] = comments[node.end_lineno]
        elif name in attrs:
            docs[name] = attrs[name]
        elif isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str):
            docs[name] = after.value.value
    prose = " ".join((inspect.getdoc(cls) or "").split())
    for name in names:
        if name not in docs:
            docs[name] = _sentence_naming(prose, name)
    return {name: first_sentence(doc) for name, doc in docs.items() if doc}


def _attributes_section(doc: str) -> dict[str, str]:
    """A Google-style ``Attributes:`` section as ``{name: text}``."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    if "Attributes:" not in (line.strip() for line in lines):
        return out
    start = [line.strip() for line in lines].index("Attributes:") + 1
    current = None
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section (Raises:, ...)
        match = re.match(r"\s{2,8}(\w+)(?: \([^)]*\))?: (.*)", line)
        if match and len(line) - len(line.lstrip()) <= 8:
            current = match.group(1)
            out[current] = match.group(2)
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def _sentence_naming(prose: str, name: str) -> str:
    """The first sentence of ``prose`` that starts with ``name`` (``name: ...``, ````name```` None: ...,
    ``a / name: ...``)."""
    for sentence in re.split(r"(?<=\.)\s+", prose):
        if re.match(rf"((``)?\w+(``)? / )*(``)?{name}(``)?(\W|$)", sentence):
            return sentence
    return ""


def type_label(tp: Any) -> str:
    """``INT``, ``FLOAT``, ``STR``, ``{a,b}`` (a Literal), ``INT|None``, ``FLOAT FLOAT`` (a tuple)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if origin in (typing.Union, types.UnionType):
        labels = [type_label(a) for a in args if a is not type(None)]
        return "|".join(labels) + ("|None" if type(None) in args else "")
    if origin is tuple:
        return " ".join(type_label(a) for a in args if a is not Ellipsis)
    return getattr(tp, "__name__", str(tp)).upper()


def option_line(field: FieldHelp, width: int, column: int) -> str:
    """``  --flag TYPE   doc (default X)`` on one line of at most ``width`` characters (the doc is shortened)."""
    if field.type is bool:  # tyro's flag pair: --x.flag / --x.no-flag
        head = f"--{'.'.join([*field.key.split('.')[:-1], '[no-]' + field.key.split('.')[-1]]).replace('_', '-')}"
    else:
        head = f"{field.flag} {type_label(field.type)}"
    default = field.default
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else ("''" if default == "" else str(default))
    left = f"  {head}".ljust(column) if len(head) + 2 < column else f"  {head} "
    if len(left) + len(shown) + 10 > width and "/" in shown:  # a long path: its file name is what tells
        shown = "…/" + shown.rstrip("/").rsplit("/", 1)[-1]
    tail = f"(default {shown})"
    room = width - len(left) - len(tail) - 1
    doc = field.doc
    if len(doc) > room:
        doc = doc[: max(room - 1, 0)].rstrip() + "…" if room > 8 else ""
    return f"{left}{doc} {tail}".rstrip() if doc else f"{left}{tail}"


def render(config: Any, width: int = 100, column: int = 44) -> list[str]:
    """The help of every field of ``config``: a header line per section, then one line per field."""
    lines: list[str] = []
    for name, doc, fields in sections(config):
        title = f"{name}: {doc}" if name else f"top level: {doc}"
        lines += ["", title if len(title) <= width else title[: width - 1] + "…"]
        lines += [option_line(f, width, column) for f in fields]
    return lines


__all__ = ["FieldHelp", "field_docs", "first_sentence", "iter_fields", "option_line", "render", "sections", "type_label"]
