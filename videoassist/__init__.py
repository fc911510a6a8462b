"""videoassist: self-hosted remote visual assistance for field service."""

__version__ = "0.1.0"
