"""The catalog of videos that can be shown, held in process as arrays for retrieval and scoring.

Every video is a row: its unit-norm content embedding in one growing float32 matrix, its creator as
an integer code, its creation time, and whether a label keeps it out of feeds. Nearest-neighbour
search is exact while the catalog is small and goes through an IVF index (services/ranker/index.py)
from `INDEX_MIN_VIDEOS` on.

Rows are never deleted: an upsert of an existing video replaces its row in place.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from kino.v1 import ranker_pb2
from services.common.errors import invalid_argument, out_of_range, too_long
from services.common.limits import MAX_FEED_ITEMS_PER_CALL, MAX_USER_CHARS
from services.common.tensors import from_proto
from services.common.text import CONTROL_CHARACTER, check_no_control_characters, is_blank
from services.common.timestamps import timestamp_seconds
from services.ranker.index import IvfIndex

VIDEO_PREFIX = "videos/"
AI_GENERATED_LABEL = "ai-generated"
# Labels starting with this keep a video out of every feed (the gateway's safety checker sets them).
SAFETY_LABEL_PREFIX = "safety:"
# A video taken out of every feed (RemoveItems), e.g. when a cameo in it was revoked.
REMOVED_LABEL = f"{SAFETY_LABEL_PREFIX}removed"
# Below this many videos exact search is as fast as the index.
INDEX_MIN_VIDEOS = 4096
# Cells probed per query: with about sqrt(N) cells, a query reads about nprobe * sqrt(N) videos. On the
# benchmark catalog (20,000 videos) 4 cells find 99% of the exact top 600 of the similar source (6: 100%,
# 3: 97%) for a third less memory read than 6.
NPROBE = 4
# Stamps of row writes, unique across every catalog of the process: a cache keyed by (row, stamp)
# knows when a row's embedding changed, whichever catalog the row belongs to.
_ROW_STAMPS = itertools.count(1)
# Principal directions of the catalog's embeddings that a user's taste is regressed in
# (features.regressed_taste). On the simulator's MiniLM catalog 32 directions hold 84% of the variance,
# and a taste regressed in them ranked as well as one regressed in all 384 dimensions (69% and 68% of
# the oracle's NDCG@10), at a small fraction of the cost.
TASTE_BASIS_DIM = 32
TASTE_BASIS_SAMPLE = 4096


SIMILARITY_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_pinned_similarity_dtype: torch.dtype | None = None


def pin_similarity_dtype(name: str) -> None:
    """Fixes `similarity_dtype` for the whole process ("auto": measure, the default); set before the
    first catalog is made (RankerSettings.similarity_dtype, or the evaluation's --similarity-dtype)."""
    global _pinned_similarity_dtype
    if name != "auto" and name not in SIMILARITY_DTYPES:
        raise ValueError(f"similarity dtype must be auto or one of {sorted(SIMILARITY_DTYPES)}, got {name!r}")
    _pinned_similarity_dtype = SIMILARITY_DTYPES.get(name)
    similarity_dtype.cache_clear()


@functools.cache
def similarity_dtype() -> torch.dtype:
    """The dtype of the catalog mirror the candidate similarity features multiply: bfloat16 where this
    CPU multiplies it faster than float32, float32 otherwise. CPUs with bfloat16 matrix units
    (AVX512-BF16, AMX) run it in about a quarter of the float32 time; without them torch emulates it at
    several times the float32 cost (7x measured on an AVX2-only EPYC). Measured once per process on
    the feature matmul's shape (a few milliseconds); cosines in bfloat16 are within about 0.004.

    Under load the timing can choose differently from run to run, and with it every feature after:
    `pin_similarity_dtype` fixes the choice, for runs that must be the same simulation (comparing
    variants with training.ranker.evaluate)."""
    if _pinned_similarity_dtype is not None:
        return _pinned_similarity_dtype
    table, references = torch.randn(1024, 384), torch.randn(384, 64)

    def best_of_three(dtype: torch.dtype) -> float:
        a, b = table.to(dtype), references.to(dtype)
        torch.mm(a, b)  # first call: kernel selection
        times = []
        for _ in range(3):
            started = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - started)
        return min(times)

    return torch.bfloat16 if best_of_three(torch.bfloat16) < best_of_three(torch.float32) else torch.float32


@dataclass(frozen=True)
class ItemRecord:
    """One video as the ranker keeps it; `name` is the resource name "videos/{id}"."""

    name: str
    creator: str
    embedding: np.ndarray  # float32 (D,), L2-normalized
    create_time: float  # unix seconds
    labels: tuple[str, ...]
    remix_parent: str  # "videos/{id}" or ""
    duration_seconds: float
    prompt: str

    @property
    def unsafe(self) -> bool:
        return any(label.startswith(SAFETY_LABEL_PREFIX) for label in self.labels)


class ItemCatalog:
    def __init__(self, dim: int, capacity: int = 1024) -> None:
        self.dim = dim
        self._embeddings = np.zeros((capacity, dim), np.float32)  # (capacity, D)
        # The same vectors as a torch tensor for the candidate similarity features, in bfloat16 where
        # that is faster (`similarity_dtype`).
        self._similarity_table = torch.zeros((capacity, dim), dtype=similarity_dtype())  # (capacity, D)
        self._create_times = np.zeros(capacity, np.float64)  # (capacity,)
        self._creator_codes = np.zeros(capacity, np.int32)  # (capacity,)
        self._unsafe = np.zeros(capacity, bool)  # (capacity,)
        self._is_remix = np.zeros(capacity, bool)  # (capacity,)
        self._row_stamps = np.zeros(capacity, np.int64)  # (capacity,): changes whenever the row is written
        self.records: list[ItemRecord] = []
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._creator_code: dict[str, int] = {}
        self.creator_names: list[str] = []
        self.by_creator: dict[int, list[int]] = defaultdict(list)
        self.remixes_of: dict[str, list[int]] = defaultdict(list)
        # Bumped on every upsert, so derived views (newest order) know when to recompute.
        self.version = 0
        self._newest_cache: tuple[int, np.ndarray] = (-1, np.zeros(0, np.int64))
        self.index: IvfIndex | None = None
        self._indexed_size = 0  # catalog size when the index was trained
        self._taste_basis: tuple[np.ndarray, np.ndarray] | None = None  # mean (D,), directions (D, k)
        self._taste_basis_size = 0  # catalog size when the basis was computed
        # Every row's embedding in the taste basis, kept current on upsert: a heavy user's regression
        # reads 1,500 rows of k numbers, not 1,500 rows of D and a projection.
        self._taste_coordinates = np.zeros((capacity, TASTE_BASIS_DIM), np.float32)  # (capacity, k)

    def __len__(self) -> int:
        return len(self.records)

    # -- views over the live rows ------------------------------------------------------------------

    @property
    def embeddings(self) -> np.ndarray:
        return self._embeddings[: len(self.records)]  # (N, D)

    @property
    def similarity_table(self) -> torch.Tensor:
        return self._similarity_table[: len(self.records)]  # (N, D), in similarity_dtype

    @property
    def create_times(self) -> np.ndarray:
        return self._create_times[: len(self.records)]  # (N,)

    @property
    def creator_codes(self) -> np.ndarray:
        return self._creator_codes[: len(self.records)]  # (N,)

    @property
    def unsafe(self) -> np.ndarray:
        return self._unsafe[: len(self.records)]  # (N,)

    @property
    def is_remix(self) -> np.ndarray:
        return self._is_remix[: len(self.records)]  # (N,)

    @property
    def row_stamps(self) -> np.ndarray:
        return self._row_stamps[: len(self.records)]  # (N,)

    def index_of(self, name: str) -> int | None:
        return self._index.get(name)

    def indices_of(self, names) -> np.ndarray:
        """Row numbers of the known names among `names`, in order; unknown names are dropped."""
        rows = np.fromiter(map(self._index.get, names, itertools.repeat(-1)), np.int64)
        return rows[rows >= 0]

    def creator_code(self, creator: str) -> int | None:
        return self._creator_code.get(creator)

    def name(self, row: int) -> str:
        return self.names[row]

    def names_of(self, rows: np.ndarray) -> list[str]:
        # map() with a bound method loops in C: a Rank asks for a thousand names at a time.
        return list(map(self.names.__getitem__, rows.tolist()))

    # -- writes ------------------------------------------------------------------------------------

    def upsert(self, records: list[ItemRecord]) -> int:
        written = []
        for record in records:
            row = self._index.get(record.name)
            if row is None:
                row = len(self.records)
                self._grow_to(row + 1)
                self.records.append(record)
                self.names.append(record.name)
                self._index[record.name] = row
            else:
                old = self.records[row]
                self.by_creator[self._creator_codes[row]].remove(row)
                if old.remix_parent:
                    self.remixes_of[old.remix_parent].remove(row)
                self.records[row] = record
            code = self._creator_code.setdefault(record.creator, len(self.creator_names))
            if code == len(self.creator_names):
                self.creator_names.append(record.creator)
            self._embeddings[row] = record.embedding
            written.append(row)
            self._create_times[row] = record.create_time
            self._creator_codes[row] = code
            self._unsafe[row] = record.unsafe
            self._is_remix[row] = bool(record.remix_parent)
            self._row_stamps[row] = next(_ROW_STAMPS)
            self.by_creator[code].append(row)
            if record.remix_parent:
                self.remixes_of[record.remix_parent].append(row)
        if written and self._taste_basis is not None:
            self._project_taste_coordinates(np.array(written))
        if written:
            rows = torch.tensor(written)
            self._similarity_table[rows] = torch.from_numpy(self._embeddings[written]).to(
                self._similarity_table.dtype
            )
        if self.index is not None:
            rows = self.indices_of([r.name for r in records])
            self.index.add(rows, self._embeddings[rows])
        self.version += 1
        return len(records)

    def taste_basis(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean (D,), principal directions (D, k)) of the embeddings, recomputed when the catalog has
        doubled since (from a fixed-seed sample: tens of milliseconds once per doubling); None below
        TASTE_BASIS_DIM + 1 videos."""
        n = len(self.records)
        if n <= TASTE_BASIS_DIM:
            return None
        if self._taste_basis is None or n >= 2 * self._taste_basis_size:
            rows = np.arange(n)
            if n > TASTE_BASIS_SAMPLE:
                rows = np.sort(np.random.default_rng(0).choice(n, TASTE_BASIS_SAMPLE, replace=False))
            sample = self._embeddings[rows].astype(np.float64)  # (S, D)
            mean = sample.mean(axis=0)
            centered = sample - mean
            values, vectors = np.linalg.eigh(centered.T @ centered)  # ascending
            directions = vectors[:, ::-1][:, :TASTE_BASIS_DIM]  # (D, k)
            self._taste_basis = (mean.astype(np.float32), np.ascontiguousarray(directions, dtype=np.float32))
            self._taste_basis_size = n
            self._project_taste_coordinates(np.arange(n))
        return self._taste_basis

    def _project_taste_coordinates(self, rows: np.ndarray) -> None:
        mean, directions = self._taste_basis
        self._taste_coordinates[rows] = (self._embeddings[rows] - mean) @ directions

    def taste_coordinates(self, rows: np.ndarray) -> np.ndarray | None:
        """The embeddings of `rows` in the taste basis, float32 (len(rows), k); None where
        `taste_basis` is."""
        if self.taste_basis() is None:
            return None
        return self._taste_coordinates[rows]

    def index_due(self) -> bool:
        """The catalog is big enough for an index and has no index, or has doubled since training."""
        n = len(self.records)
        return n >= INDEX_MIN_VIDEOS and n >= 2 * self._indexed_size

    def index_snapshot(self) -> np.ndarray:
        """A copy of the embeddings to train an index on in another thread."""
        return self.embeddings.copy()

    def install_index(self, index: IvfIndex, trained_size: int) -> None:
        """Installs an index trained on the first `trained_size` rows; later rows join it now."""
        later = np.arange(trained_size, len(self.records))
        index.add(later, self._embeddings[later])
        self.index, self._indexed_size = index, trained_size

    def _grow_to(self, size: int) -> None:
        capacity = self._embeddings.shape[0]
        if size <= capacity:
            return
        new_capacity = max(size, 2 * capacity)
        for attr in (
            "_embeddings",
            "_create_times",
            "_creator_codes",
            "_unsafe",
            "_is_remix",
            "_row_stamps",
            "_taste_coordinates",
        ):
            old = getattr(self, attr)
            grown = np.zeros((new_capacity, *old.shape[1:]), old.dtype)
            grown[:capacity] = old
            setattr(self, attr, grown)
        grown = torch.zeros((new_capacity, self.dim), dtype=self._similarity_table.dtype)
        grown[:capacity] = self._similarity_table
        self._similarity_table = grown

    # -- queries -----------------------------------------------------------------------------------

    def newest(self, limit: int) -> np.ndarray:
        """Rows of the `limit` most recently created videos, newest first (cached per catalog version)."""
        version, order = self._newest_cache
        if version != self.version:
            order = np.argsort(-self.create_times, kind="stable")
            self._newest_cache = (self.version, order)
        return order[:limit]

    def search(self, queries: np.ndarray, per_query: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidates by inner product for each query: its top `per_query` rows (exact search), or
        every video of its probed IVF cells.

        queries: float32 (Q, D), unit norm. Returns (rows, scores), each (M,), query after query; a row
        may appear once per query.
        """
        if self.index is not None:
            return self.index.search(queries, NPROBE)
        scores = (self.embeddings @ queries.T).T  # (Q, N)
        n = scores.shape[1]
        k = min(per_query, n)
        if k == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = (
            np.argpartition(-scores, k - 1, axis=1)[:, :k]
            if k < n
            else np.tile(np.arange(n), (len(queries), 1))
        )
        return top.ravel(), np.take_along_axis(scores, top, axis=1).ravel()


# ---------------------------------------------------------------------------------------------------
# From the wire
# ---------------------------------------------------------------------------------------------------

MAX_ITEMS_PER_REQUEST = MAX_FEED_ITEMS_PER_CALL
# Labels are a few words each ("ai-generated", "safety:removed"); more is not a label.
MAX_LABELS = 32
MAX_LABEL_CHARS = 64


def parse_video_name(name: str, field: str) -> str:
    """Checks a "videos/{id}" name; an empty one is FIELD_REQUIRED, a malformed one MALFORMED_NAME."""
    if not name:
        raise invalid_argument("FIELD_REQUIRED", f"{field} is required", field=field)
    video_id = name[len(VIDEO_PREFIX) :] if name.startswith(VIDEO_PREFIX) else ""
    if not video_id or "/" in video_id or len(name) > 256 or CONTROL_CHARACTER.search(video_id):
        raise invalid_argument(
            "MALFORMED_NAME",
            f"{field} must look like videos/{{id}}, got {name[:80]!r}",
            field=field,
            value=name[:80],
        )
    return name


def names_to_remove(request: ranker_pb2.RemoveItemsRequest) -> list[str]:
    """Validates a whole RemoveItems request: the video names, in order, once each."""
    if not request.videos:
        raise invalid_argument("FIELD_REQUIRED", "videos is required: send 1 to 1000 names", field="videos")
    if len(request.videos) > MAX_ITEMS_PER_REQUEST:
        raise out_of_range("videos", len(request.videos), 1, MAX_ITEMS_PER_REQUEST)
    return list(
        dict.fromkeys(parse_video_name(name, f"videos[{i}]") for i, name in enumerate(request.videos))
    )


def removed(record: ItemRecord) -> ItemRecord:
    """The record labelled out of every feed: the safety filter drops it, its history stays."""
    return dataclasses.replace(record, labels=(*record.labels, REMOVED_LABEL))


def records_from_request(request: ranker_pb2.UpsertItemsRequest, dim: int, now: float) -> list[ItemRecord]:
    """Validates a whole UpsertItems request: one bad item refuses the request (nothing is half-applied)."""
    items = request.items
    if not items:
        raise invalid_argument("FIELD_REQUIRED", "items is required: send 1 to 1000 items", field="items")
    if len(items) > MAX_ITEMS_PER_REQUEST:
        raise out_of_range("items", len(items), 1, MAX_ITEMS_PER_REQUEST)
    return [_record(item, f"items[{i}]", dim, now) for i, item in enumerate(items)]


def _record(item: ranker_pb2.FeedItem, field: str, dim: int, now: float) -> ItemRecord:
    name = parse_video_name(item.video, f"{field}.video")
    if is_blank(item.creator):
        raise invalid_argument("FIELD_REQUIRED", f"{field}.creator is required", field=f"{field}.creator")
    if len(item.creator) > MAX_USER_CHARS:
        raise too_long(f"{field}.creator", item.creator, MAX_USER_CHARS)
    check_no_control_characters(f"{field}.creator", item.creator)  # a user, as the gateway names them
    if len(item.labels) > MAX_LABELS:
        raise out_of_range(f"{field}.labels", len(item.labels), 0, MAX_LABELS)
    for i, label in enumerate(item.labels):
        if not label:
            raise invalid_argument(
                "FIELD_REQUIRED", f"{field}.labels[{i}] is empty", field=f"{field}.labels[{i}]"
            )
        if len(label) > MAX_LABEL_CHARS:
            raise too_long(f"{field}.labels[{i}]", label, MAX_LABEL_CHARS)
    if not item.HasField("content_embedding"):
        raise invalid_argument(
            "FIELD_REQUIRED", f"{field}.content_embedding is required", field=f"{field}.content_embedding"
        )
    embedding_field = f"{field}.content_embedding"
    embedding = from_proto(item.content_embedding, field=embedding_field, dtype=np.float32, ndim=1)
    if embedding.shape[0] != dim:
        detail = f"expected {dim} values, got {embedding.shape[0]}"
        raise invalid_argument(
            "INVALID_TENSOR", f"{embedding_field}: {detail}", field=embedding_field, detail=detail
        )
    # In float64: float32 squares overflow from ~1e19 on, and a norm past float32's range (values near
    # its maximum) would divide the embedding to zeros.
    embedding = embedding.astype(np.float64)
    norm = float(np.linalg.norm(embedding))
    if not norm > 1e-6:
        detail = "the embedding is zero or too short to normalize"
        raise invalid_argument(
            "INVALID_TENSOR", f"{embedding_field}: {detail}", field=embedding_field, detail=detail
        )
    if not (math.isfinite(item.duration_seconds) and 0 < item.duration_seconds <= 3600):
        duration_field = f"{field}.duration_seconds"
        raise invalid_argument(
            "OUT_OF_RANGE",
            f"{duration_field} must be in (0, 3600], got {item.duration_seconds}",
            field=duration_field,
            value=item.duration_seconds,
            min=0,
            max=3600,
        )
    parent = parse_video_name(item.remix_parent, f"{field}.remix_parent") if item.remix_parent else ""
    labels = tuple(dict.fromkeys([AI_GENERATED_LABEL, *item.labels]))
    # A video from the future would stay the newest for good (freshness, the fresh-items source): it is
    # taken as made now, as an event's time is.
    create_time = (
        min(timestamp_seconds(item.create_time, f"{field}.create_time"), now)
        if item.HasField("create_time")
        else now
    )
    return ItemRecord(
        name=name,
        creator=item.creator,
        embedding=(embedding / norm).astype(np.float32),
        create_time=create_time,
        labels=labels,
        remix_parent=parent,
        duration_seconds=float(item.duration_seconds),
        prompt=item.prompt[:500],
    )
