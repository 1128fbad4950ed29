"""Local fakes of outside APIs for the scraper tests (recorded real responses served over real HTTP)."""

from .server import CLIENT_ID, CLIENT_SECRET, FakeServer, Fault

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "FakeServer", "Fault"]
