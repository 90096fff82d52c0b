"""connector: Didomi-style consent webhooks delivered to Adobe Marketo Engage lead attributes."""

from connector.errors import ConnectorError

__version__ = "0.1.0"

__all__ = ["ConnectorError", "__version__"]
