"""The HTTP api: FastAPI app factory, problem+json errors, one router per resource."""

from api.app import create_app

__all__ = ["create_app"]
