"""What the tests share: loopback servers, helpers, the leak registry and the test catalog."""
