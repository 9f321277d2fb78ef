"""The contract's validation rules beyond one field: whole requests, variables, the 422 shape."""
