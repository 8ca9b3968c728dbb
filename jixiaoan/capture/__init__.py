"""Capture stage: capture files and live adapters in; raw frame batches and parsed headers out."""
