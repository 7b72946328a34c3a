"""The registered searchers: every module here registers its own with
:func:`nas.search.registry.register_searcher` and is imported when the registry is first read.

Adding a searcher is one new module in this folder, e.g. ``annealing.py``::

    from nas.search.registry import register_searcher

    @register_searcher("annealing", summary="simulated annealing on one objective",
                       max_objectives=1)
    def annealing(problem, *, seed=0, **options):
        from nas.search.annealing_impl import Annealing  # or define the Searcher class here

        return Annealing(problem, seed=seed, **options)

It is then choosable with ``nas search --algo annealing`` and checked by the searcher conformance
tests (:mod:`nas.search.testing`). Keep the imports of heavy modules inside the factory so that
listing the names stays cheap.
"""
