"""Dock panel and layer styling (grows with the dock-panel issue)."""
