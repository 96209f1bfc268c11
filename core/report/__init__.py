"""The answer to a comparison: statistics, pairs, differences, similarity, and their renderings.

``load`` reads a comparison's stored trials and hands them to ``build``, which computes the
per-variant summaries and the tested pairs (``pairs``, on the tests of ``stats``; the looks
of an adaptive design and their decisions in ``looks``, on the group-sequential boundaries of
``sequential``), with the prediction-level ``differences`` and the representation
``similarity`` (``cka``) beside them. ``schema`` is the typed report served over HTTP;
``render`` (with ``notes``, ``answers`` and ``phrases``), ``format``, ``plot``,
``similarity_plot`` and ``palette`` turn it into sentences, Markdown, CSV and PNG.

It may import ``core.store`` and the shared modules of ``core``; never ``core.trials``,
``core.data`` or ``core.exports``. Inside it, ``stats``, ``sequential`` and ``format``
import nothing of the package, and the modules form no cycle (an import-linter contract
checks the cycles).
"""
