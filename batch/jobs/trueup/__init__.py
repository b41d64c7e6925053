"""The monthly true-up: seats bought, assigned and used, waste and cost."""
