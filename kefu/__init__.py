"""kefu (客服): an AI customer-service backend."""

__version__ = "0.1.0"
