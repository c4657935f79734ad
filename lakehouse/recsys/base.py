"""What every recommender family shares: its configuration, its input, its interface.

A :class:`Config` names a family and its hyperparameters; :class:`TrainData`
is what a family fits on; :class:`Recommender` is the interface every family
implements (:mod:`lakehouse.recsys.families` holds the families).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from lakehouse.config import LOSSES  # noqa: F401  (re-exported for the families)
from lakehouse.errors import ModelError
from lakehouse.recsys.model import Tokens

FEATURES = ("none", "user", "item", "both")
CONFIDENCE = ("log", "linear")
# Simpler first: on a tie of the primary metric the earlier family wins.
COMPLEXITY = ("popularity", "als", "lightfm", "lightfm+item", "lightfm+user", "lightfm+both")

# Called after each epoch with the epoch number; returning True stops training.
EpochCallback = Callable[[int, "Recommender"], bool]


@dataclass(frozen=True)
class Config:
    """A family and its hyperparameters (JSON-able values only)."""

    family: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``popularity``, ``als``, ``lightfm``, ``lightfm+user``, ``lightfm+item``, ``lightfm+both``."""
        if self.family != "lightfm":
            return self.family
        features = self.params.get("features", "none")
        return "lightfm" if features == "none" else f"lightfm+{features}"

    @property
    def complexity(self) -> int:
        """Rank of simplicity: ties of the primary metric go to the lower one."""
        return COMPLEXITY.index(self.name) if self.name in COMPLEXITY else len(COMPLEXITY)

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Config:
        """The config saved by :meth:`to_json`.

        Raises:
            ModelError: Unknown family.
        """
        family = data.get("family")
        from lakehouse.recsys.families import FAMILIES

        if family not in FAMILIES:
            raise ModelError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
        return cls(family, dict(data.get("params", {})))

    def with_params(self, **changes: Any) -> Config:
        return Config(self.family, {**self.params, **changes})

    def same_as(self, other: Config | None) -> bool:
        if other is None:
            return False
        return json.dumps(self.to_json(), sort_keys=True) == json.dumps(other.to_json(),
                                                                         sort_keys=True)


@dataclass
class TrainData:
    """What a family fits on: listen counts over a fixed set of users and tracks."""

    users: np.ndarray                   # sorted user ids, one per matrix row
    items: np.ndarray                   # sorted track ids, one per column
    user_meta: Mapping[int, Tokens]
    item_meta: Mapping[int, Tokens]
    matrix: sp.csr_matrix               # listen counts, users x items

    @property
    def warm_users(self) -> np.ndarray:
        return self.users[np.diff(self.matrix.indptr) > 0]

    @property
    def warm_items(self) -> np.ndarray:
        return self.items[np.diff(self.matrix.tocsc().indptr) > 0]


class Recommender(ABC):
    """One fitted (or fittable) model of some family."""

    family: ClassVar[str]

    def __init__(self, config: Config):
        self.config = config
        self.epochs_run = 0

    @abstractmethod
    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        """Fit on ``data.matrix``.

        Args:
            data: Listen counts and metadata.
            on_epoch: Called after each epoch of iterative families; True stops.
            threads: Training threads (None: the CPUs this process may use).
        """

    @abstractmethod
    def user_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        """One float32 row per user id, so that ``users @ items.T`` ranks tracks."""

    @abstractmethod
    def item_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        """One float32 row per track id."""

    @abstractmethod
    def known_users(self) -> np.ndarray:
        """Sorted ids of the users the model learned from (its warm users)."""

    # The fitted state as named arrays and their dtypes: what the default
    # :meth:`to_arrays` saves and :meth:`from_arrays` restores, as attributes.
    ARRAYS: dict[str, type] = {}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to rebuild the fitted model, as plain arrays."""
        return {name: getattr(self, name) for name in self.ARRAYS}

    # Arrays with one row per id, as {array: its id array}; arrays whose second
    # dimension must agree (a user row times an item row).
    ROWS_PER_ID: dict[str, str] = {}
    SAME_WIDTH: tuple[str, ...] = ()

    @classmethod
    def from_arrays(cls, config: Config, arrays: Mapping[str, np.ndarray]) -> Recommender:
        """The model saved by :meth:`to_arrays`, checked by :meth:`check_arrays` first.

        Raises:
            ModelError: The arrays do not make a model of this family.
        """
        cls.check_arrays(arrays)
        model = cls(config)
        for name, dtype in cls.ARRAYS.items():
            setattr(model, name, np.asarray(arrays[name], dtype))
        return model

    @classmethod
    def check_arrays(cls, arrays: Mapping[str, np.ndarray]) -> None:
        """Refuse arrays that would load but score wrongly, or crash scoring.

        A checksum proves the artifact is the one registered, not that it is
        sound: one rewritten with its checksum updated (or saved by a bug)
        could pair 100 item ids with 2,996 factor rows and recommend the wrong
        tracks with exit code 0. Checked: every array present, of a numeric
        kind that converts to its dtype without loss, finite; ids unique and
        sorted (lookups bisect them); one row per id; matching widths.

        Raises:
            ModelError: What is wrong, naming the array.
        """
        for name, dtype in cls.ARRAYS.items():
            _check_array(name, arrays.get(name), dtype)
            if name.endswith("_ids"):
                _check_ids(name, arrays[name])
        for name, ids in cls.ROWS_PER_ID.items():
            rows, count = arrays[name].shape[0] if arrays[name].ndim else 0, len(arrays[ids])
            if rows != count:
                raise ModelError(f"{name} has {rows} rows for {count} {ids}")
        widths = {name: arrays[name].shape[1] for name in cls.SAME_WIDTH
                  if arrays[name].ndim == 2}
        if len(widths) != len(cls.SAME_WIDTH) or len(set(widths.values())) > 1:
            shapes = ", ".join(f"{n} {arrays[n].shape}" for n in cls.SAME_WIDTH)
            raise ModelError(f"factor shapes do not fit together: {shapes}")

    def knows(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``ids`` are warm users of this model."""
        return np.isin(ids, self.known_users())

    @property
    def can_score_new_users(self) -> bool:
        """Whether users without listens get more than a constant ranking."""
        return False


def _check_array(name: str, value: Any, dtype: type) -> None:
    """``value`` is an array of ``dtype``'s kind (ints for ints), all finite.

    Raises:
        ModelError: Missing, of another kind, or holding NaN or infinity.
    """
    if value is None:
        raise ModelError(f"array {name} is missing")
    if not isinstance(value, np.ndarray):
        raise ModelError(f"{name} is not an array")
    want = np.dtype(dtype)
    if want.kind in "iu":
        ok = value.dtype.kind in "iu"
    elif want.kind == "f":
        ok = value.dtype.kind in "iuf"
    else:
        ok = value.dtype.kind == want.kind
    if not ok:
        raise ModelError(f"{name} holds {value.dtype}, not {want}")
    if value.dtype.kind == "f" and value.size and not np.isfinite(value).all():
        raise ModelError(f"{name} holds NaN or infinite values")


def _check_ids(name: str, ids: np.ndarray) -> None:
    if ids.ndim != 1:
        raise ModelError(f"{name} has shape {ids.shape}, not one id per row")
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        raise ModelError(f"{name} is not sorted and unique")


def _lookup(ids: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``ids`` in sorted ``known``, and which were found."""
    pos = np.searchsorted(known, ids)
    ok = pos < len(known)
    ok[ok] = known[pos[ok]] == ids[ok]
    return np.where(ok, pos, 0), ok

