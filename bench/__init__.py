"""The benchmark (`make bench`): our server beside upstream vLLM's OpenAI server and the
reference code's approach (`reference`), on the default model's own task."""
