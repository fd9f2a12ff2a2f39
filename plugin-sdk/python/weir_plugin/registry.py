"""The plugin class a component exports, registered by ``@export``."""

import re

__all__ = ["export", "registered", "Registered"]


class Registered:
    """The exported class and who it says it is (``weir plugins`` shows it)."""

    __slots__ = ("cls", "name", "version", "description")

    def __init__(self, cls, name, version, description):
        self.cls = cls
        self.name = name
        self.version = version
        self.description = description


_REGISTERED = []


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def export(cls=None, *, name=None, version="0.1.0", description=None):
    """Marks the class the component exports (a ``Transform`` or an ``Aggregate``). ``name``
    defaults to the class name in snake case, ``description`` to the first line of its
    docstring. Use it once per plugin, bare (``@export``) or with arguments."""

    def register(plugin):
        from .aggregate import Aggregate
        from .transform import Transform

        if not (issubclass(plugin, Transform) or issubclass(plugin, Aggregate)):
            raise TypeError(f"@export takes a Transform or an Aggregate, not {plugin.__name__}")
        doc = (plugin.__doc__ or "").strip().splitlines()
        _REGISTERED[:] = [
            Registered(
                plugin,
                name or _snake(plugin.__name__),
                version,
                description if description is not None else (doc[0] if doc else ""),
            )
        ]
        return plugin

    return register if cls is None else register(cls)


def registered():
    """The exported plugin; an error naming the decorator when there is none."""
    if not _REGISTERED:
        raise RuntimeError("no plugin class is marked with @export")
    return _REGISTERED[0]
