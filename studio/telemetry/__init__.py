"""Observability: what a tenant's flows cost, how fast and how well they run, and how much of
their work went to people. It reads runs and steps; nothing below it imports it."""
