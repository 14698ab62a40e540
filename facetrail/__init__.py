"""facetrail: face recognition as queued jobs with a full record."""

__version__ = "0.1.0"
