"""The REST routes, one module per resource; each translates HTTP to one registry call."""
