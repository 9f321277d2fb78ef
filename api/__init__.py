"""authq's HTTP front end: validate, queue, answer. No job logic lives here."""
