"""Reference flavor plugins: ``vanilla`` (init, tags, attachments, health probe) and ``combo``."""
