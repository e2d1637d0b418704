"""cot-server: OpenAI-compatible serving of chain-of-thought VLMs with stage-level beam search."""

__version__ = "0.1.0"
