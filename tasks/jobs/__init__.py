"""A job's life: the runner, the queue port the API publishes through, scheduled refreshes."""
