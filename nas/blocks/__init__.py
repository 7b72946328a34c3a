"""Block kinds: one module per kind in :mod:`nas.blocks.kinds`, registered with
:func:`nas.blocks.base.register_block`; read them through :mod:`nas.blocks.registry`."""
