"""imaging: part of the Qt-free core."""
