"""Audio by content, with PyAV (FFmpeg): probing, and conversion into what Siro takes."""

from __future__ import annotations

from poller.adapters.audio.convert import encode_mp3, remux_to_adts
from poller.adapters.audio.probe import probe_audio


class PyAvAudio:
    """The :class:`~poller.ports.audio.AudioPort` of the daemon."""

    probe = staticmethod(probe_audio)
    remux_to_adts = staticmethod(remux_to_adts)
    encode_mp3 = staticmethod(encode_mp3)


__all__ = ["PyAvAudio", "encode_mp3", "probe_audio", "remux_to_adts"]
