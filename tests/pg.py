"""What a test's code sent to PostgreSQL, read from libpq's own protocol trace."""

from __future__ import annotations

import tempfile

from django.db import connection
from psycopg import pq


def queries_sent(fn) -> list[str]:
    """What the client sent to PostgreSQL while ``fn`` ran, one entry per Query message (each a
    wait for the server), from libpq's own protocol trace."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile(mode="w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            fn()
        finally:
            pgconn.untrace()
        trace.seek(0)
        messages: list[str] = []
        for line in trace:  # a message per line, but a query's own newlines continue it
            if line.startswith(("F\t", "B\t")) or not messages:
                messages.append(line)
            else:
                messages[-1] += line
        return [m.split("Query", 1)[1].strip() for m in messages if "\tQuery\t" in m or " Query " in m]
