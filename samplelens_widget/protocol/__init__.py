"""The page <-> kernel protocol: every message declared once (``messages``), read and checked
(``codec``), built from the engines' results (``replies``), and generated for the page
(``typescript`` writes ``js/wire.ts``)."""

from samplelens_widget.protocol.codec import ProtocolError, check_message, decode_request
from samplelens_widget.protocol.messages import REPLIES, REQUESTS, THREADS, Kind, Thread

__all__ = [
    "REPLIES",
    "REQUESTS",
    "THREADS",
    "Kind",
    "ProtocolError",
    "Thread",
    "check_message",
    "decode_request",
]
