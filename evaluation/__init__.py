"""Accuracy against compute of the search configurations (`make eval`): `run` asks a server the
held-out questions, `scoring` scores answers and selectors from the traces, `report` writes
docs/evaluation.md."""
