"""Helpers shared by the tests: services and processes (services, stack, secured), specs and
polling (helpers), hand-written Keras JSON (kjson), the malformed-variant corpus (malformed)."""
