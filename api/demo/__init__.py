"""The demo provider (contract §13), served by the API under ``/demo/`` with ``AUTHQ_DEMO``:
an OAuth 2 authorization server, a WooCommerce-like store and a small API that accepts only the
credentials they issued (and HTTP Basic ``demo``/``demo``).

``store.py`` keeps what it issued in Redis (several API processes share the port, so no state
lives in one of them); ``oauth.py`` and ``woo.py`` are the protocols, without HTTP; ``views.py``
and ``pages.py`` are the HTTP side; ``routes.py`` wires them.
"""
