"""Quality evaluation: test mixtures (mixtures), metrics (metrics), the systems compared (systems),
and the tables they produce (report). Used by ``percepnet-live eval``; never imported at run time."""
