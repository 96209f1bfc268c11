"""The training worker: a Celery app whose tasks train one (variant, seed) trial each."""

__all__: list[str] = []
