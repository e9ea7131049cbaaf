"""zdsync: keeps one Teamwork.com task per Zendesk ticket."""

__version__ = "0.1.0"
