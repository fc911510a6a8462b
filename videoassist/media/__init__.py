"""Media plane: the server's aiortc proxy."""
