"""The edges: the Kraken-compatible gateway, the operator API and the server that runs them."""
