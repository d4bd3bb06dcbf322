"""Value types shared by every layer: market configuration, commands and events."""
