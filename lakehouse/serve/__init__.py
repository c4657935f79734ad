"""Serve the champion's recommendations to the app over HTTP (``lakehouse serve``).

From Python::

    from lakehouse.config import Settings
    from lakehouse.serve.service import Service

    service = Service(Settings.load())
    service.refresh()                      # what the server's reload thread does
    service.recommend(42, k=5)             # the body of GET /recommendations/42?k=5
"""
