"""The ``authq`` command: the entrypoint layer above ``api``, ``worker`` and ``tasks``.

It builds ``Settings`` from the environment and flags, then runs one piece (``authq api``)
or all of them on one machine (``authq up``). Nothing else in authq reads the environment.
"""
