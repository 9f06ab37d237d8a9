"""Operating the gateway: doctor's checks, and the plan that runs them."""

__all__ = ["checks", "doctor"]
