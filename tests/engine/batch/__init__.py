"""The batch runner, its checkpoint file, the response cache and cost tracking."""
