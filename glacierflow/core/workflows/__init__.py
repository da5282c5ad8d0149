"""Jobs that chain the rest: annual velocity from an area or a folder, regional runs."""
