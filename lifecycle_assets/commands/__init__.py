"""The `lifecycle` command line's sub-commands, one module per domain; `lifecycle_assets.cli`
registers them. A driver: it may reach the daily runner and the core, nothing imports it."""
