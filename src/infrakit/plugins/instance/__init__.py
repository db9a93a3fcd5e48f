"""Reference instance plugins: ``file`` (JSON files), ``process`` (local processes)."""
