"""The syncline process: configuration, CLI, connectors, lanes, web endpoints and the demo."""

__version__ = "0.1.0"
