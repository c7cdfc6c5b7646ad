"""The per-domain Dagster definitions: each stage's assets, checks, jobs and sensors over the
plain core, the resources that wrap external systems, and the daily partitions.
`lifecycle_assets.definitions` merges them into one `Definitions`; the core never imports
from here (docs/architecture.md, the layers)."""
