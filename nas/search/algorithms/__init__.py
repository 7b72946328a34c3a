"""The registered searchers: every module here registers its own with
:func:`nas.search.registration.register_searcher`; importing this package imports them all.

Adding a searcher is one new module in this folder, e.g. ``annealing.py``::

    from nas.search.registration import register_searcher

    @register_searcher("annealing", summary="simulated annealing on one objective",
                       max_objectives=1)
    def annealing(problem, *, seed=0, **options):
        from nas.search.annealing_impl import Annealing  # or define the Searcher class here

        return Annealing(problem, seed=seed, **options)

It is then choosable with ``nas search --algo annealing`` and checked by the searcher conformance
tests (:mod:`nas.search.testing`). Keep the imports of heavy modules inside the factory so that
listing the names stays cheap.
"""

import importlib as _importlib
import pkgutil as _pkgutil

for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module}")
