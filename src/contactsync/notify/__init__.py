"""Notifications: email (confirmation links, run reports) and outbound webhooks."""
