"""The demo provider's shared facts (contract §13): where it lives, who its users are, and
what the catalog and the outbound guard gain with ``AUTHQ_DEMO``.

The API serves the provider itself (``api/demo/``); the workers only need its catalog entries
and its origin, which is why they are here, beside the job code, rather than under ``api/``.
"""
