"""The customer hub: workspaces, nodes, customers, subscriptions, consent rules, events, journal.

Every write to a customer goes through this package, so that the consent rules and the change
journal cannot be bypassed by the API, an import, a webhook or a sync.
"""
