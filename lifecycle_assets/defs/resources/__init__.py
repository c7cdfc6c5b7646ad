"""Every external system the loop touches, as a typed Dagster resource."""
