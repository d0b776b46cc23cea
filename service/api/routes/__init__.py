"""Thin route modules: parse and check the request, call a use case of ``service.api.usecases``, respond."""
