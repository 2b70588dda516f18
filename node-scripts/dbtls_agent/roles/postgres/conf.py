"""Line-preserving reader and editor for ``postgresql.conf`` and ``pgpool.conf``.

Both files share one grammar: ``name [=] value [# comment]`` per line, values either bare words and
numbers or single-quoted strings, ``#`` comments, blank lines. PostgreSQL also has ``include``,
``include_if_exists`` and ``include_dir``; they are reported, never followed (this module does no I/O).

How an edit is made, and undone, without any state outside the file:

* Every active assignment of a managed parameter is commented out by prefixing the untouched line
  with ``# <marker>-original: ``.
* The wanted values go into one block appended at the end of the file, between
  ``# <marker>-managed-begin`` and ``# <marker>-managed-end`` lines. The end of the file is the one
  place that wins over everything earlier in it, including ``include_dir 'conf.d'`` lines above.
* :func:`revert` deletes the block and strips the prefixes, which gives back the original bytes.
  :func:`set_params` always reverts first, so applying twice equals applying once, and applying new
  values replaces the old ones instead of stacking blocks.

If the original text had no final newline, the block is joined with one and its end line carries
none; revert uses that to drop the added newline again. Line endings follow the file's first line
(CRLF stays CRLF) and a UTF-8 BOM stays in front. Callers decode files with
``errors="surrogateescape"`` so that non-UTF-8 bytes in comments survive the round trip.
"""

import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from dbtls_agent.errors import AgentError

DEFAULT_MARKER = "dbtls"
BOM = "\ufeff"
INCLUDE_DIRECTIVES = ("include", "include_if_exists", "include_dir")

Value = Union[str, int, float, bool, None]

Entry = NamedTuple("Entry", [
    ("lineno", int),      # 1-based physical line number
    ("name", str),        # the name as written
    ("key", str),         # lower-cased name: PostgreSQL compares names case-insensitively
    ("value", str),       # value with quotes and escapes removed
    ("raw_value", str),   # value exactly as written
    ("kind", str),        # "setting" or one of INCLUDE_DIRECTIVES
])

Assignment = NamedTuple("Assignment", [
    ("source", str),      # whatever label the caller gave the file (usually its path)
    ("lineno", int),
    ("value", str),
])

# The lexers of PostgreSQL (guc-file.l) and Pgpool-II (pool_config.l): names may hold bytes >= 0x80
# and PostgreSQL allows one dot for extension parameters.
_NAME = r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*(?:\.[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?"
_QUOTED = r"'(?:[^'\\\n]|\\.|'')*'"
_BARE = (
    r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff\-.:/]*"  # words, paths without spaces
    r"|[+-]?(?:0[xX][0-9A-Fa-f]+|[0-9]+)[A-Za-z]*"                # integers with units: 128MB
    r"|[+-]?[0-9]*\.[0-9]*(?:[eE][+-]?[0-9]+)?"                    # reals
)
_LINE = re.compile(
    r"(?P<lead>[ \t\r\f]*)(?P<name>" + _NAME + r")[ \t\r\f]*(?:=[ \t\r\f]*)?"
    r"(?P<value>" + _QUOTED + r"|" + _BARE + r")[ \t\r\f]*(?:#.*)?$"
)
_BLANK_OR_COMMENT = re.compile(r"[ \t\r\f]*(?:#.*)?$")
# Only words and plain numbers both lexers read the same way stay bare ("128MB" is one token to
# PostgreSQL but two to Pgpool-II, so it gets quoted).
_SAFE_BARE = re.compile(r"(?:on|off|true|false|yes|no|[+-]?[0-9]+(?:\.[0-9]+)?)$", re.I)
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


# --- line handling shared with pghba -------------------------------------------------------------

def split_lines(text: str) -> List[Tuple[str, str]]:
    """Split into (content, terminator) pairs on ``\\n`` only, keeping ``\\r\\n`` as a terminator.

    ``str.splitlines`` is not used because it also splits on form feeds and Unicode separators,
    which the servers treat as ordinary characters; joining the pairs gives back ``text`` exactly.
    """
    lines = []  # type: List[Tuple[str, str]]
    pos = 0
    while pos < len(text):
        newline = text.find("\n", pos)
        if newline < 0:
            lines.append((text[pos:], ""))
            break
        content = text[pos:newline]
        if content.endswith("\r"):
            lines.append((content[:-1], "\r\n"))
        else:
            lines.append((content, "\n"))
        pos = newline + 1
    return lines


def join_lines(lines: Sequence[Tuple[str, str]]) -> str:
    return "".join(content + end for content, end in lines)


def detect_eol(lines: Sequence[Tuple[str, str]]) -> str:
    """The file's line ending, taken from its first terminated line (LF for an empty file)."""
    for _content, end in lines:
        if end:
            return end
    return "\n"


def strip_bom(text: str) -> Tuple[str, str]:
    """Return (bom, rest): neither server strips a BOM, but an editor must not lose one."""
    return (BOM, text[1:]) if text.startswith(BOM) else ("", text)


def check_text(text: str, source: str) -> None:
    """Refuse binary input early: a NUL byte means this is not the config file we were promised."""
    if "\x00" in text:
        raise AgentError("{}: contains NUL bytes; this is not a text configuration file".format(source))


def original_prefix(marker: str) -> str:
    return "# {}-original: ".format(marker)


def _block_begin(marker: str) -> str:
    return "# {}-managed-begin: the lines up to {}-managed-end are written by dbtls; " \
           "disabling TLS removes them".format(marker, marker)


def _block_end(marker: str) -> str:
    return "# {}-managed-end".format(marker)


# --- parsing --------------------------------------------------------------------------------------

def unquote(raw: str) -> str:
    """Decode a value as the servers do: strip quotes, turn '' and backslash escapes into text."""
    if not raw.startswith("'"):
        return raw
    body = raw[1:-1]
    out = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "'" and body[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        elif char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _parse_line(content: str, lineno: int, source: str) -> Optional[Entry]:
    if _BLANK_OR_COMMENT.match(content):
        return None
    match = _LINE.match(content)
    if not match:
        raise AgentError("{} line {}: {}".format(source, lineno, _diagnose(content)))
    name = match.group("name")
    raw_value = match.group("value")
    key = name.lower()
    kind = key if key in INCLUDE_DIRECTIVES else "setting"
    return Entry(lineno, name, key, unquote(raw_value), raw_value, kind)


def _diagnose(content: str) -> str:
    """Name the most likely mistake so the message is one line a person can act on."""
    stripped = content.strip()
    if any(ord(c) < 32 and c not in "\t\r\f" for c in content):
        return "control characters in a setting line; the file looks corrupted"
    if _has_unterminated_quote(stripped):
        return "unterminated quoted string in {!r}".format(_clip(stripped))
    if re.match(_NAME + r"[ \t]*=?[ \t]*(?:#.*)?$", stripped):
        return "parameter without a value in {!r}".format(_clip(stripped))
    return "syntax error in {!r}".format(_clip(stripped))


def _has_unterminated_quote(text: str) -> bool:
    """Scan like the lexers: '' and backslash escape inside quotes, # outside starts a comment."""
    inside = False
    i = 0
    while i < len(text):
        char = text[i]
        if inside:
            if char == "\\":
                i += 1
            elif char == "'":
                if text[i + 1:i + 2] == "'":
                    i += 1
                else:
                    inside = False
        elif char == "'":
            inside = True
        elif char == "#":
            return False
        i += 1
    return inside


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def parse(text: str, source: str = "config") -> List[Entry]:
    """Return every assignment and include directive, in file order, with 1-based line numbers.

    Raises AgentError naming ``source`` and the line on the first syntax error, because both servers
    refuse the whole file in that case and an editor must not make things worse.
    """
    check_text(text, source)
    _bom, body = strip_bom(text)
    entries = []
    for index, (content, _end) in enumerate(split_lines(body)):
        entry = _parse_line(content, index + 1, source)
        if entry is not None:
            entries.append(entry)
    return entries


def settings(text: str, source: str = "config") -> List[Entry]:
    """Only the parameter assignments (no include directives)."""
    return [e for e in parse(text, source) if e.kind == "setting"]


def includes(text: str, source: str = "config") -> List[Entry]:
    """The include directives, so the caller can decide whether to read those files too."""
    return [e for e in parse(text, source) if e.kind != "setting"]


def get(text: str, name: str, source: str = "config") -> Optional[str]:
    """The effective value of ``name`` within this one file: the last assignment wins."""
    found = None
    for entry in settings(text, source):
        if entry.key == name.lower():
            found = entry.value
    return found


def winning_assignment(sources: Sequence[Tuple[str, str]], name: str) -> Optional[Assignment]:
    """Given (label, text) pairs in the server's read order, say which assignment of ``name`` wins.

    PostgreSQL reads postgresql.conf top to bottom, expanding includes where they stand, and then
    postgresql.auto.conf; the last assignment wins. The caller lists the files in that order (this
    module does not read files), so a result from ``postgresql.auto.conf`` means an ``ALTER SYSTEM``
    value overrides anything written to postgresql.conf and must be handled there.
    """
    winner = None
    for label, text in sources:
        for entry in settings(text, label):
            if entry.key == name.lower():
                winner = Assignment(label, entry.lineno, entry.value)
    return winner


# --- values ---------------------------------------------------------------------------------------

def format_value(value: Value, name: str = "value") -> str:
    """Render a value the way both servers read it back unchanged.

    Booleans become on/off and numbers stay bare; everything else is single-quoted. Quotes,
    backslashes and line breaks are refused rather than escaped: PostgreSQL doubles quotes
    ('') but Pgpool-II does not understand that, so no escaping is safe for both.
    """
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise AgentError("value for {} must be text, a number or a boolean".format(name))
    if any(c in value for c in "'\\\n\r\x00"):
        raise AgentError("value for {} contains a quote, backslash or line break, which "
                         "postgresql.conf and pgpool.conf escape differently; use a plain value".format(name))
    if _SAFE_BARE.match(value):
        return value
    return "'{}'".format(value)


# --- editing --------------------------------------------------------------------------------------

def set_params(text: str, params: Dict[str, Value], marker: str = DEFAULT_MARKER,
               source: str = "config") -> str:
    """Make each parameter in ``params`` take the given value, set in exactly one place.

    ``params`` is the complete desired state for ``marker``: parameters managed by an earlier call
    but missing now get their original lines back. A value of None means "no assignment at all" (the server default applies): active lines are
    commented out and nothing is added. The result is reversible with :func:`revert` and applying
    it again changes nothing. An empty ``params`` returns the reverted text.
    """
    names = {}  # lower-cased name -> name as given
    for name in params:
        if not re.match(_NAME + "$", name) or name.lower() in INCLUDE_DIRECTIVES:
            raise AgentError("{}: {!r} is not a parameter name".format(source, name))
        if name.lower() in names:
            raise AgentError("{}: parameter {} is given twice".format(source, name))
        names[name.lower()] = name
    rendered = [(name, format_value(value, name)) for name, value in params.items() if value is not None]

    base = revert(text, marker, source)
    check_text(base, source)
    bom, body = strip_bom(base)
    lines = split_lines(body)
    eol = detect_eol(lines)
    prefix = original_prefix(marker)
    out = []  # type: List[Tuple[str, str]]
    for index, (content, end) in enumerate(lines):
        entry = _parse_line(content, index + 1, source)
        if entry is not None and entry.kind == "setting" and entry.key in names:
            out.append((prefix + content, end))
        else:
            out.append((content, end))
    if rendered:
        block = [_block_begin(marker)]
        block += ["{} = {}".format(name, value) for name, value in rendered]
        block.append(_block_end(marker))
        if out and not out[-1][1]:
            # No final newline: add one to separate the block and leave the block's last line bare,
            # which is how revert knows to remove that newline again.
            out[-1] = (out[-1][0], eol)
            out.extend((line, eol) for line in block[:-1])
            out.append((block[-1], ""))
        else:
            out.extend((line, eol) for line in block)
    return bom + join_lines(out)


def revert(text: str, marker: str = DEFAULT_MARKER, source: str = "config") -> str:
    """Undo :func:`set_params`: drop the managed block and uncomment the lines it displaced.

    Text without markers comes back unchanged. A block whose end line was deleted by hand is
    refused instead of guessed at, because removing "everything after the begin line" could
    remove the user's own settings.
    """
    check_text(text, source)
    bom, body = strip_bom(text)
    lines = split_lines(body)
    begin, end_line, prefix = _block_begin(marker), _block_end(marker), original_prefix(marker)
    out = []  # type: List[Tuple[str, str]]
    in_block = False
    begin_at = 0
    for index, (content, end) in enumerate(lines):
        if in_block:
            if content == end_line:
                in_block = False
                if not end and out:
                    out[-1] = (out[-1][0], "")
            continue
        if content == begin:
            in_block, begin_at = True, index + 1
        elif content.startswith(prefix):
            out.append((content[len(prefix):], end))
        else:
            out.append((content, end))
    if in_block:
        raise AgentError("{} line {}: the dbtls managed block has no end line; restore the file from "
                         "the backup or delete the block by hand".format(source, begin_at))
    return bom + join_lines(out)


def managed_params(text: str, marker: str = DEFAULT_MARKER, source: str = "config") -> Dict[str, str]:
    """The values currently inside the managed block (empty when the file is not managed)."""
    _bom, body = strip_bom(text)
    found = {}  # type: Dict[str, str]
    inside = False
    for index, (content, _end) in enumerate(split_lines(body)):
        if content == _block_begin(marker):
            inside = True
        elif content == _block_end(marker):
            inside = False
        elif inside:
            entry = _parse_line(content, index + 1, source)
            if entry is not None:
                found[entry.key] = entry.value
    return found


def is_managed(text: str, marker: str = DEFAULT_MARKER) -> bool:
    """True when the text carries any of this module's markers."""
    return ("# {}-managed-begin".format(marker) in text) or (original_prefix(marker) in text)
