"""birdid: identify European birds in photos, offline."""

__version__ = "0.1.0"
APP_NAME = "birdid"
APP_ID = "org.birdid.Birdid"
