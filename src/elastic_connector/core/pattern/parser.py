"""STIX 2.1 patterning language: text to typed tree (``parse``) and back (``render``).

``parse`` accepts exactly the patterns that the OASIS reference validator accepts
(``stix2patterns.validator.run_validator(text, stix_version="2.1")`` returning no error), which
is the grammar ``STIXPattern.g4`` of STIX 2.1 plus the validator's three extra rules:

* the text must begin with ``[``, optionally preceded by ``(`` and whitespace (so no comment
  may come before the first ``[``);
* one observation ``[...]`` may not carry two qualifiers of the same kind
  (``[a:b = 1] WITHIN 5 SECONDS WITHIN 6 SECONDS`` is refused, ``([a:b = 1]) WITHIN 5 SECONDS
  WITHIN 6 SECONDS`` is not);
* a comparison on a path containing a ``hashes`` step and ending with a known algorithm name
  (``MD5``, ``SHA-256``...) must compare against a well-formed digest, checked on the literal
  as written (quotes removed), exactly as the validator does; ``IN`` never passes that check.

Where the reference validator crashes instead of answering (a negative list index such as
``[-1]``, a ``hashes`` path ending with a list index, the empty string) the grammar decides:
the first two are accepted, the empty string is refused. Three resource limits are ours
alone: parentheses nested deeper than ``MAX_NESTING`` levels, trees taller than ``MAX_HEIGHT``
levels and integers longer than ``MAX_INT_DIGITS`` digits are refused with a clear error (the
reference itself dies of ``RecursionError`` somewhat above 200 levels of parentheses). A float
literal too large for a double (``1`` followed by 400 zeros, ``.0``) is accepted, like the
reference does, and reads as infinity. Parsing takes time linear in the length of the text.

Reading notes for analysts: keywords are case-sensitive (``AND``, ``WITHIN``, ``true``...),
``/* ... */`` and ``// ...`` comments are allowed between tokens, and inside ``'...'`` the only
escapes are ``\\\\`` and ``\\'``.
"""

from __future__ import annotations

import binascii
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Final, NoReturn, TypeAlias, cast

from returns.result import Failure, Result, Success

from elastic_connector.core.pattern.tree import (
    AnyIndex,
    BinaryLiteral,
    BoolLiteral,
    Comparison,
    ComparisonAnd,
    ComparisonExpression,
    ComparisonOr,
    ComparisonSite,
    Exists,
    FloatLiteral,
    FollowedBy,
    HexLiteral,
    IntLiteral,
    Literal,
    ObjectPath,
    Observation,
    ObservationAnd,
    ObservationExpression,
    ObservationOr,
    Op,
    PathStep,
    Pattern,
    PatternError,
    Qualified,
    Qualifier,
    Repeats,
    SetLiteral,
    StartStop,
    StringLiteral,
    TimestampLiteral,
    Within,
)

__all__ = [
    "MAX_HEIGHT",
    "MAX_INT_DIGITS",
    "MAX_NESTING",
    "ComparisonSite",
    "comparisons",
    "parse",
    "render",
    "render_literal",
    "render_path",
]

MAX_NESTING: Final = 100
"""Deepest accepted nesting of parentheses (the parser recurses once per level)."""

MAX_HEIGHT: Final = 100
"""Tallest accepted tree, counted in nodes from ``Pattern.expression`` down to a comparison."""

MAX_INT_DIGITS: Final = 4000
"""Longest accepted integer literal; Python refuses to convert much longer digit strings."""

_FOUND_LIMIT: Final = 40  # error reports quote at most this much of the offending text

# --- lexer ----------------------------------------------------------------------------------
# One alternative per token kind of STIXPattern.g4. ANTLR takes the longest match (the first
# rule on ties); the alternatives are ordered so that the first one matching here is that
# same token, and none backtracks more than linearly. Whitespace and comments are skipped by
# a prefix, so ``findall`` returns exactly the token texts followed by "" at the end of text.

_WHITESPACE: Final = " \t\r\n\x0b\x0c\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_B64: Final = "[A-Za-z0-9+/]"
_TOKEN_RE: Final = re.compile(
    rf"(?:[{_WHITESPACE}]++|//[^\r\n]*+|/\*.*?\*/)*+("
    + "|".join(
        (
            r"[\[\]():,*^]",  # punctuation no other token starts with
            r"(?![hbt]')[A-Za-z_][A-Za-z0-9_\-]*+",  # keywords, true/false, identifiers
            r"'[^'\\]*+(?:\\['\\][^'\\]*+)*+'",  # string: \\ and \' are the only escapes
            r"[+-]?[0-9]*+\.[0-9]++",  # float (no exponent)
            # Digits after a leading zero: ANTLR makes one integer per zero, then a last one,
            # which no rule accepts in a row. One token here keeps lexing linear (the float
            # alternative scans the whole run at every position otherwise).
            r"[+-]?0[0-9]++",
            r"[+-]?(?:0|[1-9][0-9]*+)",  # integer
            r"==?|!=|<[>=]?|>=?",
            r"h'(?:[0-9A-Fa-f]{2})*+'",
            # At least one base64 quantum: ``b''`` is not a binary literal in the grammar.
            rf"b'(?!')(?:{_B64}{{4}})*+(?:{_B64}{{3}}=|{_B64}{{2}}==)?'",
            r"t'[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
            r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]++)?Z'",
            r"[hbt]",  # a literal above that does not lex is the word h, b or t
            r".",  # ' . + - / and anything else, one character at a time
            r"\Z",  # the end: ""
        )
    )
    + ")",
    re.DOTALL,
)

_EAGER_LIMIT: Final = 1 << 20
"""Up to this length (and see ``_Parser``) the whole text is split into tokens at once."""
_CHUNK: Final = 4096
_LOOKAHEAD: Final = 1024  # tokens always available past a refill check in chunked mode

# Words that are tokens of their own; any other word is an identifier. ``LAST`` is reserved
# by the grammar without being used anywhere, and ``TRUE``/``True`` are plain identifiers.
_KEYWORDS: Final = frozenset(
    {
        "AND",
        "OR",
        "NOT",
        "FOLLOWEDBY",
        "LIKE",
        "MATCHES",
        "ISSUPERSET",
        "ISSUBSET",
        "EXISTS",
        "LAST",
        "IN",
        "START",
        "STOP",
        "SECONDS",
        "WITHIN",
        "REPEATS",
        "TIMES",
    }
)
_RESERVED: Final = _KEYWORDS | {"true", "false"}
_WORD_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NUMBER_START: Final = frozenset("+-.0123456789")

# A literal that does not lex falls apart into a one-letter word and a string.
_MALFORMED_HINTS: Final = {
    "h": "malformed hex literal: pairs of hex digits expected",
    "b": "malformed binary literal: base64 in groups of four characters expected",
    "t": "malformed timestamp: t'YYYY-MM-DDThh:mm:ss[.fraction]Z' expected",
}

_LEADING_OPEN_RE: Final = re.compile(r"[(\s]*+")
_BARE_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_OPERATORS: Final = {
    "=": Op.EQ,
    "==": Op.EQ,
    "!=": Op.NEQ,
    "<>": Op.NEQ,
    "<": Op.LT,
    "<=": Op.LE,
    ">": Op.GT,
    ">=": Op.GE,
    "IN": Op.IN,
    "LIKE": Op.LIKE,
    "MATCHES": Op.MATCHES,
    "ISSUBSET": Op.ISSUBSET,
    "ISSUPERSET": Op.ISSUPERSET,
}
_ORDER_OPS: Final = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
_OBSERVATION_OPS: Final = frozenset({"AND", "OR", "FOLLOWEDBY"})
_COMPARISON_OPS: Final = frozenset({"AND", "OR"})
_QUALIFIER_WORDS: Final = frozenset({"WITHIN", "REPEATS", "START"})

_LITERAL_NAMES: Final = ("integer", "float", "string", "binary", "hex", "timestamp", "true/false")
_OBSERVATION_FOLLOWERS: Final = ("AND", "OR", "FOLLOWEDBY", "WITHIN", "REPEATS", "START")

# The reference validator's digest check (stix2patterns/v21/object_validator.py), keyed by the
# algorithm name upper-cased without '-' or quotes. ``re.match`` semantics are kept on purpose:
# ``$`` also matches before a final newline. The reference MD6 expression is broken by a line
# continuation inside a raw string; what it actually accepts is "starts with 32 hex digits, or
# with a newline, four spaces and 64 hex digits", which is what is written here.
_DIGEST_RES: Final = {
    name: re.compile(expression)
    for name, expression in {
        "MD5": r"[a-fA-F0-9]{32}$",
        "MD6": r"[a-fA-F0-9]{32}|\n    [a-fA-F0-9]{64}",
        "RIPEMD160": r"[a-fA-F0-9]{40}$",
        "SHA1": r"[a-fA-F0-9]{40}$",
        "SHA224": r"[a-fA-F0-9]{56}$",
        "SHA256": r"[a-fA-F0-9]{64}$",
        "SHA384": r"[a-fA-F0-9]{96}$",
        "SHA512": r"[a-fA-F0-9]{128}$",
        "SHA3224": r"[a-fA-F0-9]{56}$",
        "SHA3256": r"[a-fA-F0-9]{64}$",
        "SHA3384": r"[a-fA-F0-9]{96}$",
        "SHA3512": r"[a-fA-F0-9]{128}$",
        "SSDEEP": r"[a-zA-Z0-9/+:.]{1,128}$",
        "WHIRLPOOL": r"[a-fA-F0-9]{128}$",
    }.items()
}

_Node: TypeAlias = ObservationExpression | ComparisonExpression


# --- parser ---------------------------------------------------------------------------------


class _Refused(Exception):
    """The first error, at a token index; ``parse`` finds its position and makes it a value."""

    def __init__(self, index: int, expected: tuple[str, ...], message: str = "") -> None:
        super().__init__(message)
        self.index = index
        self.expected = expected
        self.message = message


def _shorten(text: str) -> str:
    return text if len(text) <= _FOUND_LIMIT else text[:_FOUND_LIMIT] + "..."


def _unescape(body: str) -> str:
    # In a body the lexer accepted, every backslash starts one of the two escape pairs, so
    # two left-to-right replacements decode it exactly (and far faster than re.sub).
    if "\\" not in body:
        return body
    return body.replace("\\'", "'").replace("\\\\", "\\")


def _is_number(tok: str) -> bool:
    """An integer or float token (digits and signs start no other token but ``+ - .``)."""
    return tok[:1] in _NUMBER_START and tok not in ("+", "-", ".")


def _is_integer(tok: str) -> bool:
    return _is_number(tok) and "." not in tok


def _digest_rule(steps: tuple[PathStep, ...]) -> tuple[str, re.Pattern[str]] | None:
    """The digest format the validator enforces on comparisons against this path, if any."""
    if "hashes" not in steps:
        return None
    selector = steps[-1]
    if not isinstance(selector, str):
        return None
    rule = _DIGEST_RES.get(selector.upper().replace("-", "").replace("'", ""))
    return None if rule is None else (selector, rule)


class _Parser:
    """Recursive descent over the token texts, with one token of lookahead.

    Short texts are split into tokens by one ``findall``. Long texts are split in chunks as
    parsing advances, so hostile input is refused without holding millions of tokens. So are
    texts with ``/*`` or ``\\'``: an unterminated comment, or a string that does not end
    but holds escaped quotes, is scanned to the end by every later attempt to lex one, which
    would make lexing quadratic; chunks stop at the ``/`` or ``'`` such a failure leaves
    behind, where parsing fails anyway. ``self.mark`` is the token index past which the
    next chunk is needed; it is checked once per comparison, observation, path step, set
    member and qualifier, which is often enough to keep ``_LOOKAHEAD`` tokens ahead.
    """

    __slots__ = ("i", "mark", "rest", "toks")

    def __init__(self, text: str) -> None:
        self.i = 0
        if len(text) <= _EAGER_LIMIT and "/*" not in text and "\\'" not in text:
            self.toks: list[str] = _TOKEN_RE.findall(text)
            self.rest: Iterator[re.Match[str]] | None = None
            self.mark = len(self.toks)
        else:
            self.toks = []
            self.rest = _TOKEN_RE.finditer(text)
            self.mark = -1
            self._refill()

    def _refill(self) -> None:
        if self.rest is None:
            return
        toks = self.toks
        for match in itertools.islice(self.rest, _CHUNK):
            tok = match.group(1)
            toks.append(tok)
            if tok in ("/", "'"):  # never valid, and what follows may be costly to lex
                toks.append("")
                self.rest = None
                break
        else:
            if not toks or toks[-1] != "":
                self.mark = len(toks) - _LOOKAHEAD
                return
            self.rest = None
        self.mark = len(toks)

    def _refuse(self, expected: tuple[str, ...], message: str = "") -> NoReturn:
        raise _Refused(self.i, expected, message)

    def _check_height(self, height: int) -> None:
        if height > MAX_HEIGHT:
            self._refuse((), f"pattern nested deeper than {MAX_HEIGHT} levels")

    # observation expressions

    def pattern(self) -> Pattern:
        expression, _ = self._observations(0)
        if self.toks[self.i] != "":
            self._refuse((*_OBSERVATION_FOLLOWERS, "end of input"))
        return Pattern(expression)

    def _observations(self, depth: int) -> tuple[ObservationExpression, int]:
        first = self._observation(depth)
        operator = self.toks[self.i]
        if operator not in _OBSERVATION_OPS:
            return first
        operands = [first]
        operators: list[str] = []
        while operator in _OBSERVATION_OPS:
            operators.append(operator)
            self.i += 1
            operands.append(self._observation(depth))
            operator = self.toks[self.i]
        node, height = _combine(operands, operators, _OBSERVATION_LEVELS)
        self._check_height(height)
        return cast(ObservationExpression, node), height

    def _observation(self, depth: int) -> tuple[ObservationExpression, int]:
        if self.i > self.mark:
            self._refill()
        toks = self.toks
        tok = toks[self.i]
        node: ObservationExpression
        seen: set[str] | None  # qualifier kinds already on this observation; None: unchecked
        if tok == "[":
            self.i += 1
            expression, height = self._comparisons(depth)
            if self.toks[self.i] != "]":
                self._refuse(("']'", "AND", "OR"))
            self.i += 1
            node, height, seen = Observation(expression), height + 1, set()
            self._check_height(height)
        elif tok == "(":
            if depth >= MAX_NESTING:
                self._refuse(("'['",), f"parentheses nested deeper than {MAX_NESTING} levels")
            self.i += 1
            node, height = self._observations(depth + 1)
            if self.toks[self.i] != ")":
                self._refuse(("')'", *_OBSERVATION_FOLLOWERS))
            self.i += 1
            # The validator resets its duplicate check on a parenthesised group.
            seen = None
        else:
            self._refuse(("'['", "'('"))
        while (word := self.toks[self.i]) in _QUALIFIER_WORDS:
            if self.i > self.mark:
                self._refill()
            if seen is not None:
                if word in seen:
                    self._refuse(
                        ("AND", "OR", "FOLLOWEDBY", "end of input"),
                        f"{word} qualifier given twice to the same observation"
                        " (put the qualified observation in parentheses to stack them)",
                    )
                seen.add(word)
            node, height = Qualified(node, self._qualifier(word)), height + 1
            self._check_height(height)
        return node, height

    def _qualifier(self, word: str) -> Qualifier:
        toks = self.toks
        self.i += 1
        tok = toks[self.i]
        if word == "WITHIN":
            if not _is_number(tok) or tok[0] == "-":
                self._refuse(("non-negative number of seconds",))
            seconds = float(tok) if "." in tok else self._integer(tok)
            self.i += 1
            if toks[self.i] != "SECONDS":
                self._refuse(("SECONDS",))
            self.i += 1
            return Within(seconds)
        if word == "REPEATS":
            if not _is_integer(tok) or tok[0] == "-":
                self._refuse(("non-negative integer",))
            times = self._integer(tok)
            self.i += 1
            if toks[self.i] != "TIMES":
                self._refuse(("TIMES",))
            self.i += 1
            return Repeats(times)
        start = self._timestamp()
        if toks[self.i] != "STOP":
            self._refuse(("STOP",))
        self.i += 1
        return StartStop(start, self._timestamp())

    def _timestamp(self) -> TimestampLiteral:
        tok = self.toks[self.i]
        if not tok.startswith("t'"):
            self._refuse(("timestamp t'YYYY-MM-DDThh:mm:ssZ'",))
        self.i += 1
        return TimestampLiteral(tok[2:-1])

    def _integer(self, tok: str) -> int:
        if len(tok) > MAX_INT_DIGITS:
            self._refuse(("integer",), f"integer longer than {MAX_INT_DIGITS} digits")
        digits = tok.lstrip("+-")
        if digits[0] == "0" and len(digits) > 1:
            self._refuse(("integer",), "integer with a leading zero")
        return int(tok)

    # comparison expressions (inside one [...])

    def _comparisons(self, depth: int) -> tuple[ComparisonExpression, int]:
        first = self._comparison(depth)
        operator = self.toks[self.i]
        if operator not in _COMPARISON_OPS:
            return first
        operands = [first]
        operators: list[str] = []
        while operator in _COMPARISON_OPS:
            operators.append(operator)
            self.i += 1
            operands.append(self._comparison(depth))
            operator = self.toks[self.i]
        node, height = _combine(operands, operators, _COMPARISON_LEVELS)
        self._check_height(height)
        return cast(ComparisonExpression, node), height

    def _comparison(self, depth: int) -> tuple[ComparisonExpression, int]:
        if self.i > self.mark:
            self._refill()
        toks = self.toks
        tok = toks[self.i]
        if tok == "(":
            if depth >= MAX_NESTING:
                self._refuse(
                    ("object path",), f"parentheses nested deeper than {MAX_NESTING} levels"
                )
            self.i += 1
            inner = self._comparisons(depth + 1)
            if self.toks[self.i] != ")":
                self._refuse(("')'", "AND", "OR"))
            self.i += 1
            return inner
        if tok in ("NOT", "EXISTS"):
            if tok == "NOT":
                self.i += 1
                if toks[self.i] != "EXISTS":
                    self._refuse(("EXISTS",))
            self.i += 1
            return Exists(self._path(), negated=tok == "NOT"), 1
        if tok[:1] not in _WORD_START or tok in _RESERVED or "'" in tok:
            self._refuse(("object path", "'('", "EXISTS", "NOT EXISTS"))
        path = self._path()
        toks = self.toks  # _path may have refilled
        i = self.i
        tok = toks[i]
        negated = tok == "NOT"
        if negated:
            i += 1
            tok = toks[i]
        op = _OPERATORS.get(tok)
        if op is None:
            self.i = i
            operators = ("=", "!=", "<", "<=", ">", ">=", "IN", "LIKE", "MATCHES")
            self._refuse((*operators, "ISSUBSET", "ISSUPERSET", *(() if negated else ("NOT",))))
        i += 1
        self.i = start = i
        written = toks[i]
        value: Literal | SetLiteral
        if written[:1] == "'" and written != "'" and op is not Op.IN:  # a string: most common
            body = written[1:-1]
            value = StringLiteral(_unescape(body) if "\\" in body else body)
            self.i = i + 1
        elif op is Op.IN:
            value, written = self._set()
        elif op is Op.EQ or op is Op.NEQ:
            value = self._literal(True)
        elif op in _ORDER_OPS:
            value = self._literal(False)
        else:
            self._refuse(("string",))
        steps = path.steps
        if "hashes" in steps:
            digest = _digest_rule(steps)
            if digest is not None:
                selector, rule = digest
                without_quotes = written.replace("'", "")
                if rule.match(without_quotes) is None:
                    self.i = start
                    self._refuse(
                        (f"{selector} digest",),
                        f"{_shorten(without_quotes)!r} is not a valid {selector} hash",
                    )
        return Comparison(path, op, value, negated), 1

    def _path(self) -> ObjectPath:
        # The hottest code of the parser: the index lives in a local and is stored back into
        # ``self.i`` before any refusal (errors are located by token index) and on return.
        toks = self.toks
        i = self.i
        object_type = toks[i]
        if object_type[:1] not in _WORD_START or object_type in _RESERVED or "'" in object_type:
            self._refuse(("object type",))
        i += 1
        if toks[i] != ":":
            self.i = i
            self._refuse(("':'",))
        i += 1
        tok = toks[i]
        if tok[:1] in _WORD_START and "-" not in tok and "'" not in tok and tok not in _RESERVED:
            steps: list[PathStep] = [tok]
        else:
            steps = [self._key(tok, i)]
        i += 1
        while True:
            if i > self.mark:
                self.i = i
                self._refill()
                toks = self.toks
            tok = toks[i]
            if tok == ".":
                i += 1
                tok = toks[i]
                if tok[:1] in _WORD_START and "-" not in tok and "'" not in tok:
                    steps.append(tok if tok not in _RESERVED else self._key(tok, i))
                else:
                    steps.append(self._key(tok, i))
                i += 1
            elif tok == "[":
                i += 1
                tok = toks[i]
                if tok == "*":
                    steps.append(AnyIndex())
                elif _is_integer(tok):
                    self.i = i
                    steps.append(self._integer(tok))
                else:
                    self.i = i
                    self._refuse(("list index", "'*'"))
                i += 1
                if toks[i] != "]":
                    self.i = i
                    self._refuse(("']'",))
                i += 1
            else:
                self.i = i
                return ObjectPath(object_type, tuple(steps))

    def _key(self, tok: str, index: int) -> str:
        """A property name: a word without hyphen that is no keyword, or a string."""
        first = tok[:1]
        if first == "'" and tok != "'":
            return _unescape(tok[1:-1])
        if first in _WORD_START and "-" not in tok and "'" not in tok and tok not in _RESERVED:
            return tok
        raise _Refused(index, ("property name",))

    def _literal(self, boolean: bool) -> Literal:
        tok = self.toks[self.i]
        first = tok[:1]
        value: Literal
        if first == "'" and tok != "'":
            value = StringLiteral(_unescape(tok[1:-1]))
        elif first in _NUMBER_START and tok not in ("+", "-", "."):
            value = FloatLiteral(float(tok)) if "." in tok else IntLiteral(self._integer(tok))
        elif tok[1:2] == "'":
            body = tok[2:-1]
            if first == "h":
                value = HexLiteral(bytes.fromhex(body))
            elif first == "b":
                value = BinaryLiteral(binascii.a2b_base64(body))
            else:
                value = TimestampLiteral(body)
        elif boolean and tok in ("true", "false"):
            value = BoolLiteral(tok == "true")
        else:
            self._refuse(_LITERAL_NAMES if boolean else _LITERAL_NAMES[:-1])
        self.i += 1
        return value

    def _set(self) -> tuple[SetLiteral, str]:
        """``( literal, ... )`` and its text without spaces, as the validator sees it."""
        toks = self.toks
        if toks[self.i] != "(":
            self._refuse(("'('",))
        self.i += 1
        values: list[Literal] = []
        written = ["("]
        if toks[self.i] != ")":
            while True:
                if self.i > self.mark:
                    self._refill()
                    toks = self.toks
                written.append(toks[self.i])
                values.append(self._literal(True))
                if toks[self.i] != ",":
                    break
                written.append(",")
                self.i += 1
        if toks[self.i] != ")":
            self._refuse(("','", "')'") if values else ("')'", *_LITERAL_NAMES))
        self.i += 1
        written.append(")")
        return SetLiteral(tuple(values)), "".join(written)


_Levels: TypeAlias = tuple[tuple[str, Callable[..., _Node]], ...]
_OBSERVATION_LEVELS: Final[_Levels] = (
    ("FOLLOWEDBY", FollowedBy),
    ("OR", ObservationOr),
    ("AND", ObservationAnd),
)
_COMPARISON_LEVELS: Final[_Levels] = (("OR", ComparisonOr), ("AND", ComparisonAnd))
_N_ARY: Final = (ObservationAnd, ObservationOr, FollowedBy, ComparisonAnd, ComparisonOr)


def _combine(
    operands: Sequence[tuple[_Node, int]], operators: Sequence[str], levels: _Levels
) -> tuple[_Node, int]:
    """Group ``a op b op c ...`` by precedence (loosest first) into canonical n-ary nodes.

    Operands of the same kind as their new parent (from parentheses) are spliced in, so
    ``(a AND b) AND c`` and ``a AND (b AND c)`` both give ``And(a, b, c)``. Each operand comes
    with its height, and so does the result.
    """
    if not operators:
        return operands[0]
    word, node_type = levels[0]
    if word not in operators:
        return _combine(operands, operators, levels[1:])
    groups: Sequence[tuple[_Node, int]]
    if operators.count(word) == len(operators):  # one operator only: the common case
        groups = operands
    else:
        groups = []
        start = 0
        for index, operator in enumerate(operators):
            if operator == word:
                group = _combine(operands[start : index + 1], operators[start:index], levels[1:])
                groups.append(group)
                start = index + 1
        groups.append(_combine(operands[start:], operators[start:], levels[1:]))
    children: list[_Node] = []
    height = 0
    for node, node_height in groups:
        if type(node) is node_type and isinstance(node, _N_ARY):
            children.extend(node.operands)
            height = max(height, node_height - 1)
        else:
            children.append(node)
            height = max(height, node_height)
    return node_type(tuple(children)), height + 1


def _check_leading_bracket(text: str) -> PatternError | None:
    """The validator's ``brackets_check``: only ``(`` and whitespace may precede the first ``[``."""
    index = _LEADING_OPEN_RE.match(text).end()  # type: ignore[union-attr]  # matches empty
    if index < len(text) and text[index] == "[":
        return None
    # The offending token, comment included (the prefix of the token expression skips it).
    end = _TOKEN_RE.match(text, index).end()  # type: ignore[union-attr]  # always matches
    found = _shorten(text[index:end]) if end > index else ""
    return PatternError(
        position=index,
        message="a pattern must start with '[' (after any '(' and whitespace; no comment)"
        + (f" but found {found!r}" if found else " but found end of input"),
        expected=("'['", "'('"),
        found=found,
    )


def _error(text: str, refused: _Refused) -> PatternError:
    """Locate a refusal: the position of its token, what was found there, a hint if useful."""
    position, tok = len(text), ""
    for index, match in enumerate(_TOKEN_RE.finditer(text)):
        if index == refused.index:
            position, tok = match.start(1), match.group(1)
            break
    found = repr(_shorten(tok)) if tok else "end of input"
    hint = ""
    if tok == "'":
        hint = " (unterminated string, or a backslash not followed by \\ or ')"
    elif tok in _MALFORMED_HINTS and text.startswith("'", position + 1):
        hint = f" ({_MALFORMED_HINTS[tok]})"
    expected = refused.expected
    return PatternError(
        position=position,
        message=refused.message or f"expected {' or '.join(expected)} but found {found}{hint}",
        expected=expected,
        found=_shorten(tok),
    )


# --- fast path ----------------------------------------------------------------------------
# Most indicator patterns are observations of plain comparisons, the shape OpenCTI writes for
# an observable: ``[ipv4-addr:value = '1.2.3.4']``, ``[file:hashes.MD5 = '...' OR
# file:hashes.'SHA-256' = '...']``, ``[network-traffic:dst_port IN (80, 443)]``. Such texts
# (no parentheses, qualifiers or EXISTS; spaces only, or none where the grammar needs none)
# are read here by anchored regular expressions instead of the token parser: about twice as
# fast on what the connector sees most. Each piece of the expressions matches exactly one
# token of the full lexer, and the pieces are separated so that the lexer would split them
# the same way. Anything else, including every text the full parser would refuse (reserved
# words, bad digests, long integers), falls through to it; both give the same tree
# (``tests/core/pattern/test_parser.py`` checks it).

_F_STRING: Final = r"'[^'\\]*+(?:\\['\\][^'\\]*+)*+'"
_F_LITERAL: Final = "|".join(
    (
        _F_STRING,
        r"[+-]?(?:[0-9]*+\.[0-9]++|0(?![0-9])|[1-9][0-9]*+)",
        r"h'(?:[0-9A-Fa-f]{2})*+'",
        rf"b'(?!')(?:{_B64}{{4}})*+(?:{_B64}{{3}}=|{_B64}{{2}}==)?'",
        r"t'[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
        r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]++)?Z'",
        r"true|false",
    )
)
_F_VALUE: Final = rf"(?:{_F_LITERAL}|\( *+(?:(?:{_F_LITERAL})(?: *+, *+(?:{_F_LITERAL}))*+)? *+\))"
_F_KEY: Final = rf"(?:[A-Za-z_][A-Za-z0-9_]*+|{_F_STRING})"
_F_PATH: Final = rf"{_F_KEY}(?:\.{_F_KEY}|\[(?:\*|[+-]?(?:0|[1-9][0-9]*+))\])*+"


# The comparison's five groups: object type, path, NOT, operator, value. A word operator needs
# a space before it (after a name it would be part of the name).
_F_COMPARISON: Final = (
    rf"([A-Za-z_][A-Za-z0-9_\-]*+):({_F_PATH})(?: ++(NOT) *+)?+ *+"
    rf"(==?|!=|<[>=]?|>=?|(?<= )(?:IN|LIKE|MATCHES|ISSUBSET|ISSUPERSET)) *+({_F_VALUE})"
)
_SINGLE_RE: Final = re.compile(rf"\[ *+{_F_COMPARISON} *+\]")
_COMPARISON_AT_RE: Final = re.compile(_F_COMPARISON)
_OPEN_AT_RE: Final = re.compile(r"\[ *+")
_AFTER_COMPARISON_RE: Final = re.compile(r" *+\]| ++(AND|OR) ++")
_AFTER_OBSERVATION_RE: Final = re.compile(r" ++(AND|OR|FOLLOWEDBY) ++\[ *+")
_F_COMPARISON_NODES: Final[dict[str, Callable[..., ComparisonExpression]]] = {
    "AND": ComparisonAnd,
    "OR": ComparisonOr,
}
_F_OBSERVATION_NODES: Final[dict[str, Callable[..., ObservationExpression]]] = {
    "AND": ObservationAnd,
    "OR": ObservationOr,
    "FOLLOWEDBY": FollowedBy,
}
_F_STEP_RE: Final = re.compile(rf"[A-Za-z_][A-Za-z0-9_]*+|{_F_STRING}|\[(?:\*|[+-]?[0-9]++)\]")
_F_MEMBER_RE: Final = re.compile(_F_LITERAL)


def _simple_literal(text: str) -> Literal | None:
    """The literal of one token matched by ``_F_LITERAL``; None if too long an integer."""
    first = text[0]
    if first == "'":
        body = text[1:-1]
        return StringLiteral(_unescape(body) if "\\" in body else body)
    if first in _NUMBER_START:
        if "." in text:
            return FloatLiteral(float(text))
        return IntLiteral(int(text)) if len(text) <= MAX_INT_DIGITS else None
    if text[1:2] == "'":
        body = text[2:-1]
        if first == "h":
            return HexLiteral(bytes.fromhex(body))
        if first == "b":
            return BinaryLiteral(binascii.a2b_base64(body))
        return TimestampLiteral(body)
    return BoolLiteral(text == "true")


_EQUALITY_TEXTS: Final = frozenset({"=", "==", "!=", "<>"})
_ORDER_TEXTS: Final = frozenset({"<", "<=", ">", ">="})
# Bound as ``Final``: compiled, a ``Final`` module name is a C variable, and any other global a
# dictionary lookup at every use (docs/performance.md §7d).
_Pattern: Final = Pattern
_Observation: Final = Observation
_Comparison: Final = Comparison
_ObjectPath: Final = ObjectPath
_StringLiteral: Final = StringLiteral


def _whole_quotes(pieces: list[str]) -> bool:
    """Every piece of a path cut at its dots that opens a quote closes it: no quoted step was
    cut (quoted steps here hold no escaped quote)."""
    return all(piece[:1] != "'" or (len(piece) > 1 and piece[-1] == "'") for piece in pieces)


def _simple_comparison(
    object_type: str, path: str, negated: str | None, op_text: str, written: str
) -> Comparison | None:
    """The comparison matched by ``_f_comparison``, or None if the full parser must decide."""
    if object_type in _RESERVED:
        return None
    steps: tuple[PathStep, ...]
    if "." not in path and "'" not in path and "[" not in path:
        if path in _RESERVED:
            return None
        steps = (path,)
    else:
        # Cut at the dots unless an index or an escape is there, or a quoted step holds a dot
        # (a piece opens a quote it does not close): then the step expression reads it.
        texts = path.split(".") if "[" not in path and "\\" not in path else None
        if texts is None or ("'" in path and not _whole_quotes(texts)):
            texts = _F_STEP_RE.findall(path)
        found: list[PathStep] = []
        for step in texts:
            first = step[0]
            if first == "'":
                found.append(_unescape(step[1:-1]))
            elif first == "[":
                index = step[1:-1]
                if index == "*":
                    found.append(AnyIndex())
                elif len(index) <= MAX_INT_DIGITS:
                    found.append(int(index))
                else:
                    return None
            elif step in _RESERVED:
                return None
            else:
                found.append(step)
        steps = tuple(found)
    value: Literal | SetLiteral | None
    first = written[0]
    if first == "'":  # a string: any operator but IN takes one
        if op_text == "IN":
            return None
        body = written[1:-1]
        value = _StringLiteral(_unescape(body) if "\\" in body else body)
    elif first == "(":
        if op_text != "IN":
            return None
        members = [_simple_literal(member) for member in _F_MEMBER_RE.findall(written)]
        if None in members:
            return None
        value = SetLiteral(tuple(cast(list[Literal], members)))
    elif op_text in _EQUALITY_TEXTS or (op_text in _ORDER_TEXTS and first not in "tf"):
        # Not a string: only =, != (anything) and <, <=, >, >= (not true/false) take it.
        value = _simple_literal(written)
        if value is None:
            return None
    else:
        return None
    if "hashes" in steps:
        digest = _digest_rule(steps)
        if digest is not None and (
            first == "(" or digest[1].match(written.replace("'", "")) is None
        ):
            return None
    return _Comparison(
        _ObjectPath(object_type, steps), _OPERATORS[op_text], value, negated is not None
    )


def _simple_pattern(text: str) -> Pattern | None:
    """The tree of a text of the simple shape (see above), or None for any other text.

    ``parse`` tries the one-comparison shape, by far the most common, with ``_SINGLE_RE``
    first; this reads the others. Anchored matches must tile the whole text (comparison,
    separator, comparison...), so no character escapes the checks. One operator kind per
    level: mixing AND and OR is left to the full parser, which knows precedence.
    """
    opening = _OPEN_AT_RE.match(text)
    if opening is None:
        return None
    position = opening.end()
    observations: list[ObservationExpression] = []
    outer: str | None = None  # the operator between observations
    while True:
        comparisons: list[ComparisonExpression] = []
        inner: str | None = None  # the operator between the comparisons of this observation
        while True:
            match = _COMPARISON_AT_RE.match(text, position)
            if match is None:
                return None
            # Unpacked, not ``*match.groups()``: a call with star arguments goes through
            # Python's calling convention, a plain one is a direct C call.
            object_type, path, negated, op_text, written = match.groups()
            comparison = _simple_comparison(object_type, path, negated, op_text, written)
            if comparison is None:
                return None
            comparisons.append(comparison)
            after = _AFTER_COMPARISON_RE.match(text, match.end())
            if after is None:
                return None
            position = after.end()
            word = after.group(1)
            if word is None:
                break
            if inner is not None and inner != word:
                return None
            inner = word
        if inner is None:
            observations.append(Observation(comparisons[0]))
        else:
            observations.append(Observation(_F_COMPARISON_NODES[inner](tuple(comparisons))))
        if position == len(text):
            break
        between = _AFTER_OBSERVATION_RE.match(text, position)
        if between is None:
            return None
        word = between.group(1)
        if outer is not None and outer != word:
            return None
        outer = word
        position = between.end()
    if outer is None:
        return Pattern(observations[0])
    return Pattern(_F_OBSERVATION_NODES[outer](tuple(observations)))


def parse(text: object) -> Result[Pattern, PatternError]:
    """Parse a STIX 2.1 pattern into its canonical tree, or say where and why it is not one.

    Never raises, whatever ``text`` is (JSON may hold anything; a compiled build would check
    a ``str`` parameter's type before the body runs, hence ``object``). The error carries the
    0-based character position, what would have been accepted there and the offending text
    (shortened); ``str(error)`` is a one-line summary.
    """
    parsed = read_pattern(text)
    return Failure(parsed) if isinstance(parsed, PatternError) else Success(parsed)


def read_pattern(text: object) -> Pattern | PatternError:
    """``parse`` without the ``Result`` wrapper (the per-event hot path)."""
    if not isinstance(text, str):
        return PatternError(0, f"a pattern must be text, not {type(text).__name__}")
    single = _SINGLE_RE.fullmatch(text)
    if single is not None:  # by far the most common shape: one comparison
        object_type, path, negated, op_text, written = single.groups()
        comparison = _simple_comparison(object_type, path, negated, op_text, written)
        if comparison is not None:
            return _Pattern(_Observation(comparison))
    else:
        simple = _simple_pattern(text)
        if simple is not None:
            return simple
    leading = _check_leading_bracket(text)
    if leading is not None:
        return leading
    try:
        return _Parser(text).pattern()
    except _Refused as refused:
        return _error(text, refused)
    except RecursionError:
        # Unreachable with MAX_NESTING well under the interpreter limit, unless the caller is
        # itself already deep in recursion; the promise is still "never raises".
        return PatternError(0, "pattern too deeply nested for the parser")


# --- printer --------------------------------------------------------------------------------


def _render_key(key: str) -> str:
    if _BARE_KEY_RE.fullmatch(key) and key not in _RESERVED:
        return key
    return _render_string(key)


def _render_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _render_float(value: float) -> str:
    # The grammar has no exponent notation; infinity is written as a number too large for a
    # double, which parses back to infinity. NaN has no textual form.
    if value in (float("inf"), float("-inf")):
        return ("-" if value < 0 else "") + "1" + "0" * 309 + ".0"
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text if "." in text else text + ".0"


def render_literal(value: Literal | SetLiteral) -> str:
    """Canonical text of one literal or set literal (``'a\\\\b'``, ``h'0a'``, ``(1, 2)``...).

    ``BinaryLiteral(b"")`` and ``FloatLiteral(nan)`` have no textual form in STIX; they are
    printed as ``b''`` and ``nan``, which do not parse.
    """
    match value:
        case StringLiteral(text):
            return _render_string(text)
        case BoolLiteral(flag):
            return "true" if flag else "false"
        case IntLiteral(number):
            return str(number)
        case FloatLiteral(number):
            return _render_float(number)
        case HexLiteral(data):
            return f"h'{data.hex()}'"
        case BinaryLiteral(data):
            return f"b'{binascii.b2a_base64(data, newline=False).decode('ascii')}'"
        case TimestampLiteral(text):
            return f"t'{text}'"
        case SetLiteral(values):
            return "(" + ", ".join(render_literal(item) for item in values) + ")"


def render_path(path: ObjectPath) -> str:
    """Canonical text of an object path, e.g. ``file:hashes.'SHA-256'`` or ``x:a[*].b[-1]``."""
    parts = [path.object_type, ":"]
    for index, step in enumerate(path.steps):
        if isinstance(step, str):
            parts.append(_render_key(step) if index == 0 else "." + _render_key(step))
        elif isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append("[*]")
    return "".join(parts)


def _render_comparisons(node: ComparisonExpression, parent: type | None = None) -> str:
    match node:
        case Comparison(path, op, value, negated):
            return f"{render_path(path)} {'NOT ' if negated else ''}{op.value} " + render_literal(
                value
            )
        case Exists(path, negated):
            return f"{'NOT ' if negated else ''}EXISTS {render_path(path)}"
        case ComparisonAnd(operands):
            text = " AND ".join(_render_comparisons(item, ComparisonAnd) for item in operands)
            return f"({text})" if parent is ComparisonAnd else text
        case ComparisonOr(operands):
            text = " OR ".join(_render_comparisons(item, ComparisonOr) for item in operands)
            return f"({text})" if parent in (ComparisonAnd, ComparisonOr) else text


_BINDS_LOOSER: Final[dict[type, tuple[type, ...]]] = {
    # A child of these types needs parentheses under the key type.
    ObservationAnd: (ObservationAnd, ObservationOr, FollowedBy),
    ObservationOr: (ObservationOr, FollowedBy),
    FollowedBy: (FollowedBy,),
}


def _render_qualifier(qualifier: Qualifier) -> str:
    match qualifier:
        case Within(seconds):
            # ``+ 0.0`` turns -0.0 (not writable after WITHIN) into the equal 0.0.
            text = str(seconds) if isinstance(seconds, int) else _render_float(seconds + 0.0)
            return f"WITHIN {text} SECONDS"
        case Repeats(times):
            return f"REPEATS {times} TIMES"
        case StartStop(start, stop):
            return f"START t'{start.value}' STOP t'{stop.value}'"


def _render_observations(node: ObservationExpression) -> str:
    match node:
        case Observation(expression):
            return f"[{_render_comparisons(expression)}]"
        case ObservationAnd(operands) | ObservationOr(operands) | FollowedBy(operands):
            word = {ObservationAnd: " AND ", ObservationOr: " OR ", FollowedBy: " FOLLOWEDBY "}
            looser = _BINDS_LOOSER[type(node)]
            return word[type(node)].join(
                f"({_render_observations(item)})"
                if isinstance(item, looser)
                else _render_observations(item)
                for item in operands
            )
        case Qualified():
            return _render_qualified(node)


def _render_qualified(node: Qualified) -> str:
    chain: list[Qualifier] = []
    base: ObservationExpression = node
    while isinstance(base, Qualified):
        chain.append(base.qualifier)
        base = base.expression
    chain.reverse()
    # The validator refuses two qualifiers of one kind directly on ``[...]``; a parenthesised
    # group resets its check, so wrap the text so far whenever a kind would repeat.
    text = _render_observations(base)
    seen: set[type] | None = set()
    if not isinstance(base, Observation):
        text, seen = f"({text})", None
    for qualifier in chain:
        if seen is not None:
            if type(qualifier) in seen:
                text, seen = f"({text})", None
            else:
                seen.add(type(qualifier))
        text = f"{text} {_render_qualifier(qualifier)}"
    return text


def render(pattern: Pattern) -> str:
    """Canonical text of a pattern: ``parse(render(p)) == Success(p)`` for every ``p`` that
    ``parse`` returns, and for every hand-built canonical tree whose names, numbers and
    digests are expressible in STIX (see ``render_literal`` for the two values that are not).
    """
    return _render_observations(pattern.expression)


# --- queries for mappers --------------------------------------------------------------------


def comparisons(pattern: Pattern) -> Iterator[ComparisonSite]:
    """Every comparison and ``EXISTS`` test of ``pattern``, in text order, with its context."""
    observation = -1
    stack: list[tuple[_Node, bool, bool]] = [(pattern.expression, True, False)]
    while stack:
        node, disjunctive, qualified = stack.pop()
        match node:
            case Comparison() | Exists():
                yield ComparisonSite(node, observation, disjunctive, qualified)
            case Observation(expression):
                observation += 1
                stack.append((expression, disjunctive, qualified))
            case Qualified(expression):
                stack.append((expression, disjunctive, True))
            case ComparisonOr(operands) | ObservationOr(operands):
                stack.extend((item, disjunctive, qualified) for item in reversed(operands))
            case ComparisonAnd(operands) | ObservationAnd(operands) | FollowedBy(operands):
                stack.extend((item, False, qualified) for item in reversed(operands))
