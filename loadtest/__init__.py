"""Load generator for OpenAI-compatible chat servers, and the reference baseline."""

from loadtest.config import Level, LoadConfig
from loadtest.runner import LevelResult, RunResult, run_load
from loadtest.stats import Slo, Summary

__all__ = ["Level", "LevelResult", "LoadConfig", "RunResult", "Slo", "Summary", "run_load"]
