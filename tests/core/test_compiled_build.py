"""What the compiled build (``setup.py``) may compile. mypyc turns a class's annotations into the
plain classes it knows (``list[msgspec.Raw]`` becomes ``list``), and a msgspec Struct takes its
fields' types from them: a Struct in a compiled module would decode differently from the same
Struct as Python. So no compiled module defines one. On the pure build nothing is compiled and
this holds trivially; ``nox -s tests`` runs it on the compiled one."""

from __future__ import annotations

import importlib
import importlib.machinery
import pkgutil

import msgspec

import elastic_connector.core


def _core_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(
            elastic_connector.core.__path__, prefix="elastic_connector.core."
        )
    ]


def test_no_compiled_module_defines_a_struct() -> None:
    compiled: list[str] = []
    for name in _core_modules():
        module = importlib.import_module(name)
        if not isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader):
            continue
        compiled.append(name)
        structs = [
            value.__name__
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, msgspec.Struct)
            and value.__module__ == name
        ]
        assert structs == [], f"{name} is compiled and defines msgspec Structs {structs}"
    assert bool(compiled) == elastic_connector.core.compiled()
