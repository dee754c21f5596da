"""The four papers' tables and figures as declarative experiments (one module per paper).

Each module lists ``EXPERIMENTS`` (functions returning an :class:`~siamlab.experiments.spec.Experiment`);
the machinery that runs and judges them (runner, rules, gates, outputs) lives one folder up and never
imports a paper module except through :mod:`siamlab.experiments.registry` and the recorded readings.
"""
