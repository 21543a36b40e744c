"""The wiki client: the one HTTP seam (session), login, siteinfo, upload primitives, the chunk protocol,
names, pictures and the pacing client. Depends only on :mod:`mwingest.base`."""
