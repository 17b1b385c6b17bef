"""The sampling engine: settings, stage chain, draw and exact step statistics (numpy only)."""
