"""Connectors: one package per provider, all speaking :mod:`contactsync.connectors.base`."""
