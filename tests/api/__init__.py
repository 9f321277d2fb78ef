"""The HTTP API through the real app factory (aiohttp's test client), no workers unless a test needs them."""
