"""``python -m bpgrid.status``: a grid's state from its cells' files and the tracking store."""
