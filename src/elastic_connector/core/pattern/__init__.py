"""The STIX 2.1 patterning language.

- ``tree``: the typed syntax tree (``Pattern`` and its nodes) and ``PatternError``;
- ``parser``: text to tree (``parse``), tree to canonical text (``render``), and the
  comparisons of a tree with where they sit (``comparisons``).

Exports ``parse``, ``render``, ``comparisons``, ``ComparisonSite``, ``Pattern`` and
``PatternError``; the node types are imported from ``tree``.
"""

from elastic_connector.core.pattern.parser import ComparisonSite, comparisons, parse, render
from elastic_connector.core.pattern.tree import Pattern, PatternError

__all__ = ["ComparisonSite", "Pattern", "PatternError", "comparisons", "parse", "render"]
