"""Evaluation on any data against any OpenAI-compatible endpoints, one or two side by side:
`python -m evaluation.compare --help`."""
