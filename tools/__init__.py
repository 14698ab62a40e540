"""Build-only tools of the repository (not part of the installed ``facetrail`` package)."""
