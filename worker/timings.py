"""Timing limits shared by the Celery configuration, the task wrapper and the heartbeat.

Redelivery of a dead worker's job (Redis transport; see ``worker/liveness.py``): a message
a worker holds unacked is re-scored by that worker every ``RENEW_EVERY`` seconds; one not
re-scored for ``VISIBILITY_TIMEOUT`` seconds is put back on its queue by the next sweep, and
every idle worker sweeps every ``RESTORE_EVERY`` seconds (and once when it starts). So a
SIGKILLed worker's job is queued again, at the head of its queue, within about
``VISIBILITY_TIMEOUT + RESTORE_EVERY`` = 35 s of the death, however long jobs and countdowns are.
"""

RENEW_EVERY = 5.0          # the heartbeat thread's period (worker/liveness.py)
VISIBILITY_TIMEOUT = 30    # six missed renewals: only a dead (or cut-off) worker gets there
RESTORE_EVERY = 5          # kombu's unacked_restore_interval; throttle 1: a real sweep each time
# The sweep's fleet-wide mutex (kombu's default 300 s): a worker killed while holding it
# must not stop every sweep for five minutes.
RESTORE_MUTEX_EXPIRE = 20
# A countdown is held in the worker's memory as an unacked message and renewed like the job
# it runs, so it may outlast the visibility timeout; a longer wait is still taken in steps.
MAX_COUNTDOWN = 60
