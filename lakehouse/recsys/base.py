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
from lakehouse.recsys.topk import Scores, VectorScores

FEATURES = ("none", "user", "item", "both")
# A configuration's blend with recent popularity (lakehouse.recsys.popularity.Trended):
# the trend's weight in [0, 1) and its window in days; absent or 0: no blend.
TREND, TREND_DAYS = "trend", "trend_days"
CONFIDENCE = ("log", "linear", "bm25", "tfidf")

# Called after each epoch with the epoch number; returning True stops training.
EpochCallback = Callable[[int, "Recommender"], bool]

# The candidates, simplest first, and the class of each family: filled in by
# lakehouse.recsys.families as it loads (it defines them on top of this module, so
# this module cannot import it). Every Config comes from a module that imports it.
CANDIDATES: list[type[Recommender]] = []
FAMILIES: dict[str, type[Recommender]] = {}


@dataclass(frozen=True)
class Config:
    """A family and its hyperparameters (JSON-able values only)."""

    family: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The candidate: the family, or a variant of it (``lightfm+item``)."""
        family = FAMILIES.get(self.family)
        name = family.candidate_name(self.params) if family else self.family
        return f"{name}+trend" if self.params.get(TREND) else name

    @property
    def complexity(self) -> int:
        """Rank of simplicity: ties of the primary metric go to the lower one."""
        order = [c.candidate for c in CANDIDATES]
        return order.index(self.name) if self.name in order else len(order)

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "params": dict(self.params)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Config:
        """The config saved by :meth:`to_json`.

        Raises:
            ModelError: Unknown family.
        """
        family = data.get("family")
        if family not in FAMILIES:
            raise ModelError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
        return cls(family, dict(data.get("params", {})))

    def with_params(self, **changes: Any) -> Config:
        return Config(self.family, {**self.params, **changes})

    def without_trend(self) -> Config:
        """The configuration of the model a trend blend is made of (itself if none)."""
        return Config(self.family, {k: v for k, v in self.params.items()
                                    if k not in (TREND, TREND_DAYS)})

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
    # Day (since the epoch, UTC, fractional) of each pair's last listen, same pattern as
    # ``matrix``; None when the listens carry no usable time.
    last_day: sp.csr_matrix | None = None

    @property
    def warm_users(self) -> np.ndarray:
        return self.users[np.diff(self.matrix.indptr) > 0]

    @property
    def warm_items(self) -> np.ndarray:
        return self.items[np.diff(self.matrix.tocsc().indptr) > 0]


class Recommender(ABC):
    """One fitted (or fittable) model of some family.

    A family owns its search: its default configuration (the first trial),
    its search space, and when it cannot run at all (``skip_reason``). The
    search (:mod:`lakehouse.recsys.search`) only calls these, so adding a
    family is adding one class to :data:`lakehouse.recsys.families.CANDIDATES`.
    """

    family: ClassVar[str]
    # The name of this class's candidate in the search; a variant of a family (LightFM
    # with metadata) is a subclass with its own candidate name.
    candidate: ClassVar[str] = ""
    # A variant extends the best configuration of this candidate (None: it stands alone).
    parent: ClassVar[str | None] = None
    # Whether the search tunes it (False: its default is its only trial, or none).
    searchable: ClassVar[bool] = True
    # Whether the search early-stops its epochs on the tuning users (snapshot/restore).
    early_stopping: ClassVar[bool] = False
    # Trials beyond which searching it is pointless (a one-parameter space); None: no cap.
    max_trials: ClassVar[int | None] = None
    # Whether its models score new users from their metadata: it competes for the cold
    # route on the holdout's cold-start users, whatever it does on warm users.
    cold_start: ClassVar[bool] = False
    # Whether it is a metadata variant of its parent: it must also beat itself fitted on
    # shuffled metadata (its placebo) to be chosen.
    metadata_variant: ClassVar[bool] = False

    def __init__(self, config: Config):
        self.config = config
        self.epochs_run = 0

    # ----------------------------------------------------------- the search
    @classmethod
    def candidate_name(cls, params: Mapping[str, Any]) -> str:
        """The candidate a configuration of this family is (its family by default)."""
        return cls.family

    @classmethod
    def default_config(cls, settings: Any, parent: Config | None = None) -> Config:
        """The first trial: the settings' defaults, or the parent's best with this variant."""
        return Config(cls.family, {"seed": int(settings.seed)})

    @classmethod
    def first_params(cls, base: Config) -> dict[str, Any]:
        """The parameters of the first trial, as optuna enqueues them."""
        return {}

    @classmethod
    def suggest(cls, trial: Any, base: Config) -> Config:
        """The configuration optuna's ``trial`` proposes around ``base``."""
        return base

    @classmethod
    def skip_reason(cls, data: TrainData) -> str | None:
        """Why this family cannot run on ``data`` (memory, no timestamps), or None."""
        return None

    @classmethod
    def estimated_seconds(cls, data: TrainData) -> float | None:
        """How long its first fit should take on ``data``, if the family can tell."""
        return None

    @classmethod
    def from_parent(cls, config: Config, parent: Recommender | None,
                    data: TrainData) -> Recommender | None:
        """A variant's model built on its parent's fitted model, when ``config`` allows it.

        None (the default): the variant is fitted from scratch.
        """
        return None

    def fitted_config(self) -> Config:
        """The configuration with what fitting decided (e.g. early-stopped epochs)."""
        return self.config

    def snapshot(self) -> Any:
        """The learned state at the best epoch so far (early-stopping families)."""
        return None

    def restore(self, snapshot: Any, epochs: int) -> None:
        """Go back to a :meth:`snapshot` taken after ``epochs`` epochs."""
        self.epochs_run = epochs

    # ------------------------------------------------------------- fitting
    @abstractmethod
    def fit(self, data: TrainData, on_epoch: EpochCallback | None = None,
            threads: int | None = None) -> None:
        """Fit on ``data.matrix``.

        Args:
            data: Listen counts and metadata.
            on_epoch: Called after each epoch of iterative families; True stops.
            threads: Training threads (None: the CPUs this process may use).
        """

    def refreshed(self, data: TrainData) -> Recommender | None:
        """This model with its statistics of the listens recomputed from ``data``.

        Popularity is a count, not a learned parameter: a ranking frozen at
        training goes stale between retrains, so scoring recomputes it from
        the scoring day's listens. None (the default): nothing to recompute.
        """
        return None

    # ------------------------------------------------------------- scoring
    def user_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        """One float32 row per user id, so that ``users @ items.T`` ranks tracks."""
        raise ModelError(f"{self.family} scores from listening histories, not user vectors")

    def item_vectors(self, ids: np.ndarray, meta: Mapping[int, Tokens]) -> np.ndarray:
        """One float32 row per track id."""
        raise ModelError(f"{self.family} scores from listening histories, not item vectors")

    def scores(self, user_ids: np.ndarray, history: sp.csr_matrix, item_ids: np.ndarray,
               user_meta: Mapping[int, Tokens], item_meta: Mapping[int, Tokens]) -> Scores:
        """The scores of ``user_ids`` over the catalogue ``item_ids``.

        Args:
            user_ids: The users, one per row of ``history``.
            history: Their listens, users x ``item_ids`` (what item-based
                families score from; the vector families ignore it).
            item_ids: The catalogue to rank (sorted track ids).
            user_meta: Metadata tokens per user id.
            item_meta: Metadata tokens per track id.
        """
        return VectorScores(self.user_vectors(user_ids, user_meta),
                            self.item_vectors(item_ids, item_meta))

    @abstractmethod
    def known_users(self) -> np.ndarray:
        """Sorted ids of the users the model learned from (its warm users)."""

    def knows(self, ids: np.ndarray, history: sp.csr_matrix | None = None,
              items: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask: which of ``ids`` this model scores as warm users.

        Args:
            ids: User ids.
            history: Their listens (rows of ``ids``, columns of ``items``);
                item-based families know every user with a listen of a track
                they know.
            items: The track ids of ``history``'s columns.
        """
        return np.isin(ids, self.known_users())

    @property
    def can_score_new_users(self) -> bool:
        """Whether users without listens get more than a constant ranking."""
        return False

    @property
    def ranks_new_users(self) -> bool:
        """Whether it can be the cold-start route: a ranking for users without listens.

        The metadata models (:attr:`can_score_new_users`) and the popularity
        families (one ranking for everyone) can; a model of histories cannot.
        """
        return self.can_score_new_users

    # ---------------------------------------------------------- save/load
    # The fitted state as named arrays and their dtypes: what the default
    # :meth:`to_arrays` saves and :meth:`from_arrays` restores, as attributes.
    ARRAYS: ClassVar[dict[str, type]] = {}

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
        problem = model.check()
        if problem:
            raise ModelError(f"the {cls.family} model is damaged: {problem}")
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

    def check(self) -> str | None:
        """What makes the loaded arrays unusable together, or None."""
        return None


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


def _span(base: Config, key: str, low: float, high: float) -> tuple[float, float]:
    """A search range that holds the first trial's value (the settings')."""
    value = base.params.get(key, low)
    return min(low, value), max(high, value)


def _lookup(ids: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``ids`` in sorted ``known``, and which were found."""
    pos = np.searchsorted(known, ids)
    ok = pos < len(known)
    ok[ok] = known[pos[ok]] == ids[ok]
    return np.where(ok, pos, 0), ok

