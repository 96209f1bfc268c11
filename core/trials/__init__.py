"""A comparison's life: from the validated POST to its last trial, and everything that moves it.

``validation`` turns a request into a ``ValidatedComparison``; ``comparisons`` stores it and its
trials (``planning`` builds the rows and fills those an earlier comparison trained, via
``reuse``); ``dispatch`` sends them through ``queue`` after the commit; ``lifecycle`` holds every
guarded state change of a trial and a comparison (and the lock order); ``finalize`` ends a
comparison or asks ``rounds`` for the next seeds; ``sweeper`` recovers what a crash left;
``webhooks`` and ``destinations`` tell the client; ``monitoring`` counts it all.

This is the top of ``core``: it may import every other package of ``core`` and ``models``;
nothing in ``core`` imports it back.
"""
