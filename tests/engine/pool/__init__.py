"""LLMClientPool: routing, failover and configuration."""
