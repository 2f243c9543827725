"""The clients and the one request path (Endpoint) under them."""
