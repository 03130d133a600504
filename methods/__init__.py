"""The training methods, one module each; every module here registers itself on import.

Add a method by adding one module that defines a :class:`bench.training.method.Method` subclass decorated
with :func:`bench.training.method.register_method` (see ``erm.py`` for the smallest one, and docs/extending.md's
"Adding a method"). Nothing else needs to change: the registry imports every module here.
"""
