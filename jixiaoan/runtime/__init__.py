"""Runtime: assembles capture, engine, storage and alerts into a running monitor."""
