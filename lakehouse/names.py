"""Table and column names, defined once and imported everywhere else."""

# Zones, in the order data flows through them.
RAW = "raw"
HISTORY = "history"
STANDARDIZED = "standardized"
CONSUMPTION = "consumption"
QUARANTINE = "quarantine"
META = "meta"
ZONES = (RAW, HISTORY, STANDARDIZED, CONSUMPTION, QUARANTINE, META)

# Source endpoints; each lands in raw.<endpoint>.
USERS = "users"
TRACKS = "tracks"
LISTEN_HISTORY = "listen_history"
ENDPOINTS = (USERS, TRACKS, LISTEN_HISTORY)

# Tables.
RAW_USERS = f"{RAW}.{USERS}"
RAW_TRACKS = f"{RAW}.{TRACKS}"
RAW_LISTEN_HISTORY = f"{RAW}.{LISTEN_HISTORY}"
STD_USERS = f"{STANDARDIZED}.users"
STD_TRACKS = f"{STANDARDIZED}.tracks"
STD_LISTEN_HISTORY = f"{STANDARDIZED}.listen_history"
STD_LISTENS = f"{STANDARDIZED}.listens"
CONS_INTERACTIONS = f"{CONSUMPTION}.interactions"
CONS_USER_FEATURES = f"{CONSUMPTION}.user_features"
CONS_TRACK_FEATURES = f"{CONSUMPTION}.track_features"
CONS_DAILY_KPIS = f"{CONSUMPTION}.daily_kpis"
CONS_RECOMMENDATIONS = f"{CONSUMPTION}.recommendations"
CONS_RECOMMENDATION_OUTCOMES = f"{CONSUMPTION}.recommendation_outcomes"
META_RUNS = f"{META}.runs"
META_ALERTS = f"{META}.alerts"


def raw_table(endpoint: str) -> str:
    """The raw table an endpoint lands in."""
    return f"{RAW}.{endpoint}"


def history_table(endpoint: str) -> str:
    """The history (SCD2 versions) table of an endpoint."""
    return f"{HISTORY}.{endpoint}"


def quarantine_table(table: str) -> str:
    """The quarantine table of a standardized or consumption table."""
    return f"{QUARANTINE}.{table.split('.', 1)[1]}"


# Keys, named the same from the standardized zone on.
USER_ID = "user_id"
TRACK_ID = "track_id"

# Partition columns.
INGEST_DATE = "ingest_date"
SCORE_DATE = "score_date"

# Run metadata added to every raw row.
RUN_ID = "_run_id"
INGESTED_AT = "_ingested_at"
PAGE = "_page"
RAW_META_COLUMNS = (RUN_ID, INGESTED_AT, PAGE)

# History columns (lakehouse.history): one row per event of an endpoint's versions.
H_HASH = "_hash"            # md5 of the record's source fields (binary)
H_ORDINAL = "_ordinal"      # which copy of identical records in one snapshot (0, 1, ...)
H_EVENT = "_event"          # H_OPEN | H_CLOSE | H_DAY
H_FIRST_SEEN = "_first_seen"  # first ingest date of the version; also a build input column
H_LAST_SEEN = "_last_seen"  # close events: the last ingest date the version was seen
H_CHANGE_DATE = "_change_date"  # the ingest date whose merge wrote the event
H_NOTE = "_note"            # day events: JSON (raw fingerprint, counts)
H_OPEN = "open"
H_CLOSE = "close"
H_DAY = "day"

# Quarantine columns added to the original row.
Q_REASON = "_reason"
Q_CHECK = "_check"
Q_BUILD_DATE = "_build_date"

# Pipeline steps: the ``pipeline`` of meta.runs, and each step's lock name.
INGEST = "ingest"
BUILD = "build"
TRAIN = "train"
RECOMMEND = "recommend"
STEPS = (INGEST, BUILD, TRAIN, RECOMMEND)
# The scheduled job that runs them (its job_failed alerts, its lock).
DAILY = "daily"
# Online outcomes of the served lists (lakehouse.monitor.outcomes), a step of the daily job.
OUTCOMES = "outcomes"
# Compaction, checkpoints and vacuum (lakehouse maintain), weekly in the daily job.
MAINTAIN = "maintain"

# Model registry aliases.
CHAMPION = "champion"
CHALLENGER = "challenger"

# Model metrics, as a registry version and a train run's details store them:
# metrics[section][key], e.g. metrics[MODEL_METRICS][PRECISION_AT_10].
MODEL_METRICS = "model"
BASELINE_METRICS = "baseline"  # the popularity baseline on the same holdout
PRECISION_AT_10 = "precision_at_10"
RECALL_AT_10 = "recall_at_10"
NDCG_AT_10 = "ndcg_at_10"
AUC = "auc"
COVERAGE = "coverage"
METRIC_KEYS = (PRECISION_AT_10, RECALL_AT_10, NDCG_AT_10, AUC, COVERAGE)

# Columns of consumption.recommendation_outcomes that other modules read (the table's
# schema is declared once, in lakehouse.monitor.outcomes.OUTCOMES_ARROW).
MODEL_VERSION = "model_version"
O_USERS = "users"                      # scored users with at least one new pair
O_PRECISION = "precision_at_k"
O_RECALL = "recall_at_k"
O_HIT_RATE = "hit_rate_at_k"
O_NDCG = "ndcg_at_k"
O_POP_PRECISION = "popularity_precision_at_k"
O_POP_RECALL = "popularity_recall_at_k"
O_POP_HIT_RATE = "popularity_hit_rate_at_k"
O_LIFT = "lift"                        # precision_at_k / popularity_precision_at_k
O_COMPLETE = "complete"                # the horizon's days have all been ingested

# Run statuses in meta.runs.
SUCCESS = "success"
FAILED = "failed"

# Contract value lists (docs/API_CONTRACT.md).
GENDERS = (
    "Male", "Female", "Non-binary", "Genderqueer", "Genderfluid", "Agender",
    "Bigender", "Gender questioning", "Gender nonconforming",
)
GENRES = (
    "Rock", "Pop", "Hip Hop", "Jazz", "Electronic", "Classical", "Country", "Blues",
    "R&B", "Reggae", "Folk", "Metal", "Punk", "Funk", "Indie", "Alternative", "Techno",
)

# Per-user holdout metrics: the ones that can rank candidates (Settings.primary_metric).
PER_USER_METRICS = ("precision_at_10", "recall_at_10", "ndcg_at_10")
