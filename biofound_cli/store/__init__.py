"""Shards, packed split files, the torch Dataset over them, and batch samplers."""
