"""Operating the gateway: doctor's checks."""

__all__ = ["doctor"]
