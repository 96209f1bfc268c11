"""The data a comparison trains on: the built-in datasets' registry and uploaded datasets.

Owns which dataset names exist, their shapes and classes (``datasets``), and the upload
path that checks, stores and describes a tenant's own arrays (``uploads``). It may import
the shared modules of ``core`` (config, errors, spec, timestamps) and ``core.store``; it
never imports ``core.trials``, ``core.report.build`` or ``core.exports``.
"""
