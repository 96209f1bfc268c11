"""The ``archbench`` command."""

__all__: list[str] = []
