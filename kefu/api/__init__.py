"""HTTP only: authentication, validation, SSE framing, error → status mapping."""
