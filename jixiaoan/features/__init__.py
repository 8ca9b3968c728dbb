"""Feature stage: sessions, anonymised byte encodings, Whisper frequency and AfterImage features."""
