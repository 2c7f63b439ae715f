"""Python client for the twinloop daemon's wire protocol (docs/protocol.md, version 1).

- :class:`Bridge` sends a rig's data (two-photon and eye-camera frames, treadmill counts, sync
  and clock ticks) in the protocol's connection order, within the daemon's ack window.
- :class:`Subscriber` decodes everything the daemon publishes into typed objects and numpy
  arrays (:mod:`twinloop_client.messages`).
- :mod:`twinloop_client.protocol` has the codes and the 64-byte header.
"""

from .bridge import Bridge, FlowTimeout
from .messages import (Ack, Activity, Behaviour, Cells, ClockMapping, ClockUpdate, Decision,
                       Flip, Message, Prediction, Registration, StimulusOnset, Status, View,
                       decode)
from .protocol import (ClockDomain, Dtype, Header, ProtocolError, Stream, SyncCode)
from .subscriber import Subscriber

__all__ = [
    "Ack", "Activity", "Behaviour", "Bridge", "Cells", "ClockDomain", "ClockMapping",
    "ClockUpdate", "Decision", "Dtype", "Flip", "FlowTimeout", "Header", "Message",
    "Prediction", "ProtocolError", "Registration", "StimulusOnset", "Status", "Stream",
    "Subscriber", "SyncCode", "View", "decode",
]
__version__ = "0.1.0"
