"""Stage-level search: pure async orchestration over a narrow engine interface (no vLLM here)."""
