"""The bundled MooVitamix source API: the contract's endpoints over seeded, simulated data.

- :mod:`lakehouse.mockapi.data`: :class:`MockConfig` and :func:`generate`, the data set as a
  pure function of the seed, the sizes, the profile and the "as of" date;
- :mod:`lakehouse.mockapi.app`: :func:`create_app`, the FastAPI app serving it (with faults);
- :mod:`lakehouse.mockapi.testing`: :func:`running_mock_api`, a live server in a thread.
"""

from lakehouse.mockapi.data import Dataset, MockConfig, generate

__all__ = ["Dataset", "MockConfig", "generate"]
