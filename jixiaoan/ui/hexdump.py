"""Hex + ASCII dump of a packet's captured bytes, and the dialog that shows it."""

from __future__ import annotations

from PyQt5.QtGui import QFontDatabase
from PyQt5.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout

from jixiaoan.storage.store import PacketRow
from jixiaoan.ui.packet_model import format_time, verdict_text


def hex_dump(data: bytes, width: int = 16) -> str:
    """Classic dump lines: offset, hex bytes (split in two halves), printable ASCII."""
    lines = []
    half = width // 2
    for off in range(0, len(data), width):
        chunk = data[off : off + width]
        hex_part = " ".join(f"{b:02x}" for b in chunk[:half])
        if len(chunk) > half:
            hex_part += "  " + " ".join(f"{b:02x}" for b in chunk[half:])
        ascii_part = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:08x}  {hex_part:<{width * 3 + 1}} |{ascii_part}|")
    return "\n".join(lines)


def describe_row(row: PacketRow, device: str = "") -> str:
    """One header line for a packet: time, addresses, length, protocol, verdict."""
    verdict = verdict_text(row)
    if row.is_bad:
        verdict = f"MALICIOUS ({row.attack or 'unknown family'})"
    score = f", score {row.score:.3f}" if row.score is not None else ""
    who = f"{device}: " if device else ""
    return (f"{who}packet {row.index} at {format_time(row.time)}: {row.source} -> {row.dest}, "
            f"{row.length} bytes, {row.type}; malicious: {verdict}{score}")


class HexDumpDialog(QDialog):
    """Shows one packet's header line and its bytes (the stored AllData)."""

    def __init__(self, row: PacketRow, device: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Packet {row.index}")
        self.resize(760, 480)
        layout = QVBoxLayout(self)
        self.header = QLabel(describe_row(row, device))
        self.header.setWordWrap(True)
        layout.addWidget(self.header)
        data = getattr(row, "data", None) or b""
        captured = f"{len(data)} bytes captured" + (
            f" of {row.length} on the wire" if row.length != len(data) else "")
        layout.addWidget(QLabel(captured))
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.text.setPlainText(hex_dump(data) if data else "(no bytes stored for this packet)")
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
