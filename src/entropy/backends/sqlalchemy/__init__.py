"""SQL storage shared by every backend: the tables and the state store."""
