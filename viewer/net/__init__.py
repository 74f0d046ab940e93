"""net: part of the Qt-free core."""
