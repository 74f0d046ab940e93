"""store: part of the Qt-free core."""
