"""The registered block kinds: every module here registers its own with
:func:`nas.blocks.base.register_block`; importing this package imports them all.

Adding a kind is one new module in this folder (see ``pool.py``, MetaFormer's pooling mixer, for a
complete small one): its spec (YAML fields), layer value (short-string tag), unit (key, exact
MACs/params, memory operators, DeepMAD entropy, static module) and the :class:`BlockKind` that
builds units, elastic modules, zero-init and supernet parameter counts. A stage then allows it in
YAML with ``blocks: {<name>: {...}}``, and the conformance tests (``tests/test_block_kinds.py``)
check it against torch's counters and the supernet automatically.
"""

import importlib as _importlib
import pkgutil as _pkgutil

for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module}")
