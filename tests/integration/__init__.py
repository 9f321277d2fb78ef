"""Jobs end to end: the API, real Celery worker processes, real Redis and real providers on loopback."""
