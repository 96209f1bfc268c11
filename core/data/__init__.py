"""Datasets a tenant brings: the upload path that checks, stores and describes a tenant's own
arrays (``uploads``). The built-in datasets' registry is ``core.datasets`` (shared, since the
spec validates names against it).

It may import ``core.store`` and the shared modules of ``core``; it never imports
``core.trials``, ``core.report`` or ``core.exports``.
"""
