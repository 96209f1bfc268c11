"""Tuning each architecture at equal budgets: the search space, the sampler and the budget curve.

The ``tuning`` block of a comparison (the knobs, their ranges, the budget) and its checks are
``core.tuning_space`` (flat, so ``core.spec`` can hold it). ``search`` turns the stored tuning
trials of one variant back into an Optuna study (ask-and-tell, rebuilt from the database on
every ask rather than held in memory, so a restarted api or worker continues the same search)
and asks the next configuration or whether a running trial should be pruned; ``budget`` is the
expected best validation score as a function of the number of tuning trials (Dodge et al.,
"Show Your Work", EMNLP 2019), with its spread.

It imports the shared modules of ``core`` and Optuna; nothing of ``core.trials``, ``core.store``
or ``core.report`` (they call it).
"""
