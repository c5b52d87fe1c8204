"""OpenCTI -> Elastic threat-intel connector.

``elastic_connector.core`` is pure (no I/O, no pycti import) and safe to import anywhere, e.g.
``from elastic_connector.core.pattern import parse``. ``elastic_connector.shell`` does the I/O.
"""

__version__ = "0.1.0"
