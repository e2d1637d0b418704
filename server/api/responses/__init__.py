"""POST /v1/responses (OpenAI's Responses API) over the same search as chat completions: the
request rewrites itself as a chat completion request, the chat service runs it, and the result
(or the chat stream) is rendered as a Response (or as its events)."""
