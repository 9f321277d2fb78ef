"""The job logic of authq: records, validation models, the catalog and the flows.

Nothing here knows aiohttp or Celery, so every piece can be tested alone. The web
front end (``api``) and the Celery wrappers (``worker``) both depend on this package;
it depends on neither.
"""
