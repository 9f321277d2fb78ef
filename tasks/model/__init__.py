"""The records authq keeps, the request bodies it accepts, and the catalog of implementations."""
