"""Code shared by the api and the worker: settings, database, tables, errors, statistics."""

__all__: list[str] = []
