"""The configuration the library applies: a ``Config``, or a mapping shaped like ``config.yml``."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final, cast

from returns.result import Failure

from elastic_connector.api.failures import InputError, type_name
from elastic_connector.core.config import Config, build_config
from elastic_connector.core.config.load import Layer

_CONFIG_SOURCE: Final = "config"
"""How an error names the mapping given (``config connector.max_tlp: ...``)."""


def make_config(settings: Mapping[str, object] | None = None) -> Config | InputError:
    """A ``Config`` from a mapping shaped like ``config.yml`` (``{"connector": {"mode":
    "stix"}}``) over the defaults, validated as the commands validate it; the connection
    settings the offline commands do not need may be left out. Every problem is reported."""
    if settings is None:
        return _defaults()
    if not isinstance(cast(object, settings), Mapping):  # a notebook passes anything
        return InputError(f"config must be a mapping like config.yml, not {type_name(settings)}")
    built = build_config([Layer(_CONFIG_SOURCE, settings)], offline=True)
    if isinstance(built, Failure):
        return InputError("invalid configuration", tuple(str(e) for e in built.failure()))
    return built.unwrap()


@functools.cache
def _defaults() -> Config:
    return build_config([], offline=True).unwrap()


def resolve_config(config: Config | Mapping[str, object] | None) -> Config | InputError:
    """The ``config`` argument of the library's functions as the ``Config`` it stands for."""
    if isinstance(config, Config):
        return config
    return make_config(config)
