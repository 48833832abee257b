"""``python -m v13.sim``: write a simulated data set (fast pace) in the harvest's layout."""
