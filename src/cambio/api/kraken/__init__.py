"""Kraken's spot REST API, served by cambio: same paths, envelope, ids, numbers, errors."""
