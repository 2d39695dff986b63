"""Sandboxes: faithful local fakes of provider APIs, for tests, demos and trying a source offline."""
