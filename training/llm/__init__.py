"""LLM pseudo-labelling: the prompt, an OpenAI-compatible client, answer parsing, the checkpoint, the loop."""
