"""What the database refuses, whichever database it is.

Each backend turns its driver's errors into these (the driver's own is the
``__cause__``), so that the modules of this package, and their callers, catch one kind
of error on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations


class DatabaseError(Exception):
    """The database cannot be reached, or refused a statement."""


class IntegrityError(DatabaseError):
    """A change the schema refuses: a constraint, or a trigger (the audit log's)."""


class UniqueViolation(IntegrityError):
    """A row would repeat a value a unique index or primary key allows once."""


class ForeignKeyViolation(IntegrityError):
    """A row would name a row that does not exist (or one still named would go)."""
