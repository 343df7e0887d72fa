"""The AI Agent Platform service."""
