"""media: part of the Qt-free core."""
