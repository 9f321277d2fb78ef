"""Timing limits shared by the Celery configuration and the task wrapper."""

# The broker redelivers a task whose worker died once this many seconds have passed
# (Redis transport). It must exceed the longest job and every countdown, or a task runs twice.
VISIBILITY_TIMEOUT = 90
MAX_COUNTDOWN = 60
