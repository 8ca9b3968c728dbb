"""Capture stage: capture files and live adapters in, batches of raw frames and parsed headers out."""
