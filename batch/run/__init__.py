"""A run: the tenant's state, the plan, journaled execution, and the read-back that reconciles."""
