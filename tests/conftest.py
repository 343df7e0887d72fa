"""Fixtures shared by every test tree: real services on loopback, started and stopped here."""
