"""Authentication: passwords, signed tokens, one-time link tokens, rate limits.

Imports nothing else of the project but ``videoassist.errors``.
"""
