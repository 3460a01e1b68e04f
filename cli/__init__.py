"""The ``conductor`` command line: parse -> REST client or daemon -> render."""
