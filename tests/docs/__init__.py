"""The docs against the code: settings, routes, fields, error codes and modules they name, and links that resolve."""
