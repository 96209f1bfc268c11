"""Data beyond the built-in registry (``core.datasets``): the upload path that checks, stores
and describes a tenant's own arrays (``uploads``), and the corrupted copies of a test set that
robustness is scored on (``corruptions``: generated from a seed, never downloaded).

It may import ``core.store`` and the shared modules of ``core``; it never imports
``core.trials``, ``core.report`` or ``core.exports``.
"""
