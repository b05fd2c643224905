"""The step scheduler: which requests advance by one denoising step next. Pure Python, no model.

The engine's busy loop calls `schedule()` once per forward pass, hands the plan to the executor, and
feeds the result back through `update()`. One rule: every request carries `steps_done` and
`num_steps`, and a step advances each request in the plan by one. Everything else is a choice of
*which* requests make up the next plan:

* Rank every live request with the queue policy (`PriorityPolicy` by default, `FifoPolicy` to compare).
  The priority order is: interactive and aged batch requests, then the other batch requests; within a class
  started requests first (so a running batch is not shuffled step after step), then the tenant that
  has received the fewest row-steps (start-time fair queuing: a tenant that becomes active starts at
  the least-served active tenant's count), then admission order.
* The best-ranked request picks the shape bucket; requests of that bucket join in rank order while
  their rows fit the bucket's row limit (min of `max_rows` and the executor's memory budget).
  Classifier-free guidance costs two rows in the same call, never a second call.
* A step led by batch work is throughput-bound: requests join while rows fit, up to the smallest
  batch size whose measured rows per second are within 10% of the best (`StepTimes.best_rows`), and
  no longer than that batch's model call plus one decode (requests whose final frames are due
  beyond that wait a step), and no longer than `batch_step_limit` times one guided request's step
  alone: full throughput where a large batch costs little more (an accelerator), and on a CPU, where
  cost grows with rows, steps short enough that an interactive arrival waits at most about that many
  of its own steps for the one in flight.
* A step costs one model call per token grid among its rows (a model that alternates grids runs
  requests at different places in its cycle in separate DiT calls; `calls_per_grid`), each call
  predicted from the measured time of its own rows, so a request on another grid joins only while that
  extra call fits the budgets below. On a GPU a step then keeps to one grid, and the requests left out
  are caught up within a cycle; on a CPU, where time grows with rows, steps mix grids as before.
* A step led by interactive (or aged) work is latency-bound: others join it only while the predicted
  step time (the model call, plus the decodes of final frames due in it) stays within
  `interactive_slowdown` times the leader's time alone (the pair's, when two share: below). That one rule is the
  pre-emption of batch jobs, and it adapts to the hardware: on a GPU, where eight rows cost little more
  than two, interactive requests batch together and batch rows fill the rest; on a CPU, where cost
  grows with rows, interactive requests mostly run one after another and batch requests wait.
* With `share_urgent_steps` (off by default), two urgent requests of one bucket share their steps
  when that lowers the larger of their predicted slowdowns (finish time over time alone, the wait so
  far included) below running them one after the other: an arrival beside a running interactive
  request no longer waits for all of its steps; a leader already late keeps its step to itself.
* Aging: a batch request accumulates the time it waited while interactive work ran; past
  `aging_seconds` it is promoted: ranked with the interactive requests (ahead of the younger ones) and
  exempt from the slowdown limit, so it finishes however much interactive traffic arrives.
* A cancelled request, or one past its deadline, leaves at the next `schedule()`: its rows go to
  others at that very step.
* Decodes. With `pipelined_decodes` a request whose last step is done leaves the step loop at once
  and its frames are decoded by a decode stage beside the next steps (`take_decodes`, `decoded`): no
  step carries a decode, so an interactive request never waits for a batch request's frames. Without
  it, final frames are decoded inside the step that finishes them, and the step's predicted time
  counts them. Restarts go the same way for batch work: with `pipelined_decodes` a batch request whose
  step ended its main schedule (`model/sampler.py`) leaves the steps while the decode stage takes its
  latents through the autoencoder (`take_restarts`, `restarted`) and comes back for its last steps, so
  no interactive request waits for that round trip (several steps' time on a CPU). An interactive
  request's own round trip stays inside its step, where it waits for nothing; without pipelined
  decodes every round trip does.

Admission (`add`) refuses early instead of burning compute: a full queue is RESOURCE_EXHAUSTED /
QUEUE_FULL with a retry delay (an interactive request counts only the interactive requests waiting, so
batch work filling the queue never turns it away); a deadline that cannot be met even on an idle machine is
DEADLINE_EXCEEDED / DEADLINE_UNMEETABLE; one that could be met but not behind the current queue is
RESOURCE_EXHAUSTED / QUEUE_FULL with the delay after which it could. Estimates come from measured
step times (`StepTimes`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from services.common.errors import KinoError, cancelled, deadline_exceeded, resource_exhausted
from services.denoiser.engine.plan import DenoiseEvent, EventKind, StepItem, StepPlan, StepResult
from services.denoiser.engine.request import EngineRequest, Priority, RequestStatus, ShapeBucket
from services.denoiser.engine.step_times import StepTimes

MIN_RETRY_SECONDS = 0.05


@dataclass(frozen=True)
class SchedulerConfig:
    max_rows: int = 16  # batch rows per step, at most; the executor's memory budget may lower it per bucket
    # Requests admitted but not yet started; one more is refused with QUEUE_FULL. An interactive request
    # counts only the interactive ones: a queue full of batch work never turns interactive work away.
    max_queued: int = 64
    aging_seconds: float = 20.0  # a batch request displaced this long by interactive work is promoted
    interactive_slowdown: float = 1.1  # others may slow a step led by interactive work this much
    batch_step_limit: float = 2.5  # a batch-led step's model call, in guided-request steps at most
    policy: str = "priority"  # "priority" or "fifo" (the queue order; see POLICIES)
    # Final frames decoded, and restarts' round trips made, beside the step loop, not inside a step.
    pipelined_decodes: bool = False
    # With pipelined decodes: a batch request's decode waits while interactive work is live, this long at
    # most. A decode beside a step slows it by a third on a 2-core CPU (20.1 -> 26.6 ms for 2 rows), which
    # an interactive request would pay at every step.
    batch_decode_deferral_s: float = 1.0
    # Two urgent requests share steps when that lowers the larger of their predicted slowdowns
    # (`StepScheduler._sharing_partner`); off, the second waits whenever its rows would break the
    # leader's `interactive_slowdown`. Off by default: side by side on the 2-core CPU it did not lower
    # the interactive tail (docs/engine/REPORT.md).
    share_urgent_steps: bool = False
    # With pipelined decodes: batch steps wait while an interactive request's frames are due or being
    # decoded (its steps are done; a batch step beside the decode slows it by a third on a 2-core CPU), at
    # the price of that core idling for one decode per interactive request (docs/engine/REPORT.md).
    batch_steps_wait_for_interactive_decodes: bool = True
    # A step costs one model call per token grid among its rows (`grid_of_step`: a model that
    # alternates grids runs rows at different places in its cycle in separate DiT calls), each call
    # predicted from the measured times of its own rows: a request joins a step on another grid only
    # when that extra call fits the step's budget. On a GPU, where a call costs about the same for 2
    # rows as for 64, a step then runs one grid and the rows left out catch up with it within a cycle
    # (a step moves its rows one place on); on a CPU, where time grows with rows, little changes. Off:
    # a step is planned and measured as one call whatever its grids (the earlier rule, to compare).
    calls_per_grid: bool = True

    def __post_init__(self) -> None:
        if self.max_rows < 2:
            raise ValueError("max_rows must be at least 2: a guided request takes two rows")
        if self.policy not in POLICIES:
            raise ValueError(f"unknown scheduling policy {self.policy!r}; known: {sorted(POLICIES)}")


class QueuePolicy(Protocol):
    """The order in which live requests are offered rows; smaller keys go first."""

    def key(self, request: EngineRequest, tenant_usage: float) -> tuple: ...

    def is_urgent(self, request: EngineRequest) -> bool:
        """Whether a step led by this request is latency-bound (others may slow it only so much)."""
        ...


class PriorityPolicy:
    def key(self, request: EngineRequest, tenant_usage: float) -> tuple:
        return (_class_rank(request), not request.started, tenant_usage, request.seq)

    def is_urgent(self, request: EngineRequest) -> bool:
        return request.priority == Priority.INTERACTIVE or request.promoted


class FifoPolicy:
    """First come, first served, whatever the priority: the order a plain request queue gives."""

    def key(self, request: EngineRequest, tenant_usage: float) -> tuple:
        return (request.seq,)

    def is_urgent(self, request: EngineRequest) -> bool:
        return False


POLICIES: dict[str, type] = {"priority": PriorityPolicy, "fifo": FifoPolicy}


def _class_rank(request: EngineRequest) -> int:
    """0 for interactive requests and aged batch requests, 1 for the other batch requests."""
    return 0 if request.priority == Priority.INTERACTIVE or request.promoted else 1


class StepScheduler:
    def __init__(
        self,
        config: SchedulerConfig,
        step_times: StepTimes | None = None,
        *,
        row_limit: Callable[[ShapeBucket], int] | None = None,
        grid_of_step: Callable[[int], Hashable] | None = None,
        restart_index_of: Callable[[EngineRequest], int | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        # The token grid a request's step runs on (the executor's `token_grid_of_step`); None: one grid.
        self._grid_of_step = grid_of_step
        # The step after which a request's latents go through the autoencoder, inside that step or in
        # the decode stage (the executor's `restart_index`); None: no request restarts.
        self._restart_index_of = restart_index_of
        self.step_times = step_times or StepTimes()
        self.policy: QueuePolicy = POLICIES[config.policy]()
        self.clock = clock
        self._row_limit = row_limit
        self._requests: dict[str, EngineRequest] = {}  # live requests, admission order
        self._leaving: dict[
            str, tuple[EngineRequest, KinoError]
        ] = {}  # removed by schedule(), told by update()
        self._due_decodes: list[EngineRequest] = []  # steps done, not yet handed to the decode stage
        self._due_restarts: list[EngineRequest] = []  # main schedules done, for the decode stage
        self._tenant_usage: dict[str, float] = {}  # tenant -> row-steps served
        self._next_seq = 0
        self._next_step_id = 0
        self._plan_started_at = 0.0

    # ---- admission ---------------------------------------------------------------------------

    def add(self, request: EngineRequest) -> None:
        """Admits the request or raises the KinoError that tells the caller why not (and when to retry)."""
        now = self.clock()
        if request.request_id in self._requests:
            raise ValueError(f"request id {request.request_id} is already live")
        if request.rows > self.row_limit(request.bucket):
            raise ValueError(
                f"bucket {request.bucket} fits {self.row_limit(request.bucket)} rows, fewer than one request"
            )
        # Interactive work is ranked ahead of batch work, so only interactive requests stand in its way.
        waiting = (
            self.waiting_by_priority()[Priority.INTERACTIVE]
            if request.priority == Priority.INTERACTIVE
            else self.num_waiting
        )
        if waiting >= self.config.max_queued:
            raise resource_exhausted(
                "QUEUE_FULL",
                f"the denoiser queue is full ({waiting} waiting); retry later",
                retry_after_seconds=self._time_to_next_slot(request.bucket),
                queued=waiting,
                max=self.config.max_queued,
            )
        request.arrival = now
        if request.deadline is not None:
            self._check_deadline(request, now)
        request.seq = self._next_seq
        self._next_seq += 1
        active_tenants = {r.tenant for r in self._requests.values()}
        if request.tenant not in active_tenants:
            served = [self._tenant_usage.get(t, 0.0) for t in active_tenants]
            self._tenant_usage[request.tenant] = min(served, default=0.0)
        self._requests[request.request_id] = request

    def _check_deadline(self, request: EngineRequest, now: float) -> None:
        remaining = request.deadline - now
        alone = self.alone_seconds(request)
        if alone > remaining:
            raise deadline_exceeded(
                "DEADLINE_UNMEETABLE",
                f"the deadline is {remaining:.3f} s away but {request.num_steps} steps take about "
                f"{alone:.3f} s even on an idle server",
                deadline=f"{remaining:.3f}",
                estimate_seconds=f"{alone:.3f}",
            )
        estimate = self.estimate_seconds(request)
        if estimate > remaining:
            raise resource_exhausted(
                "QUEUE_FULL",
                f"the deadline is {remaining:.3f} s away but the queue ahead makes this request take "
                f"about {estimate:.3f} s; retry later",
                retry_after_seconds=max(MIN_RETRY_SECONDS, estimate - remaining),
                deadline=f"{remaining:.3f}",
                estimate_seconds=f"{estimate:.3f}",
            )

    def estimate_seconds(self, request: EngineRequest) -> float:
        """Expected seconds from now until `request` (admitted or not) has its frames.

        Two lower bounds, the larger wins: the work ranked ahead of it plus its own (steps at the best
        measured row throughput of their bucket, plus one final decode each unless decodes are
        pipelined, plus each restart still ahead); and its own steps at the step time of the batch it
        would share, plus its own final decode and restart.
        """
        if request.request_id not in self._requests:
            request.seq = self._next_seq  # it would queue behind everyone admitted so far
        own_key = self.policy.key(request, self._usage_on_arrival(request))
        ahead = [
            r
            for r in self._requests.values()
            if r is not request and self.policy.key(r, self._tenant_usage.get(r.tenant, 0.0)) < own_key
        ]
        seconds = 0.0
        for bucket in {r.bucket for r in ahead} | {request.bucket}:
            mine = [r for r in ahead if r.bucket == bucket] + ([request] if bucket == request.bucket else [])
            row_steps = sum(r.remaining_steps * r.rows for r in mine)
            seconds += row_steps / self.step_times.best_rate(bucket, self.row_limit(bucket))
            # restarts inside the steps; the decode stage makes the others beside them
            seconds += sum(self._restart_seconds(r) for r in mine if self._restarts_inline(r))
            if not self.config.pipelined_decodes:  # else the decode stage runs beside the steps
                seconds += len(mine) * self.step_times.decode_seconds(bucket)  # one final decode each
        sharing = sum(r.rows for r in ahead if r.bucket == request.bucket) + request.rows
        alongside = request.remaining_steps * self.step_times.predict(
            request.bucket, min(sharing, self.row_limit(request.bucket))
        )
        alongside += self.step_times.decode_seconds(request.bucket) + self._restart_seconds(request)
        return max(seconds, alongside)

    def alone_seconds(self, request: EngineRequest) -> float:
        """Expected seconds for `request` on an idle server."""
        steps = request.remaining_steps * self.step_times.predict(request.bucket, request.rows)
        return steps + self.step_times.decode_seconds(request.bucket) + self._restart_seconds(request)

    def _restart_index(self, request: EngineRequest) -> int | None:
        return None if self._restart_index_of is None else self._restart_index_of(request)

    def _restart_seconds(self, request: EngineRequest) -> float:
        """Seconds the request's restart adds while it is still ahead of it; else 0."""
        index = self._restart_index(request)
        if index is None or request.steps_done > index:
            return 0.0
        return self.step_times.restart_seconds(request.bucket)

    def _restarts_inline(self, request: EngineRequest) -> bool:
        """Whether the request's restart runs inside its step: without pipelined decodes always, with
        them for interactive requests only (the round trip is on their path either way, and inside
        their own step it waits for no decode stage and no step in flight)."""
        return not self.config.pipelined_decodes or request.priority == Priority.INTERACTIVE

    def _inline_restarts_next_step(self, request: EngineRequest) -> int:
        """1 when the request's next step ends its main schedule and takes it through the autoencoder
        inside the step (`_restarts_inline`), else 0."""
        return int(self._restart_index(request) == request.steps_done and self._restarts_inline(request))

    def _usage_on_arrival(self, request: EngineRequest) -> float:
        if request.request_id in self._requests or request.tenant in {
            r.tenant for r in self._requests.values()
        }:
            return self._tenant_usage.get(request.tenant, 0.0)
        return min((self._tenant_usage.get(r.tenant, 0.0) for r in self._requests.values()), default=0.0)

    def _time_to_next_slot(self, bucket: ShapeBucket) -> float:
        """When a queued request is expected to start: the time the machine takes for one average request."""
        if not self._requests:
            return MIN_RETRY_SECONDS
        work = sum(r.remaining_steps * r.rows for r in self._requests.values()) / len(self._requests)
        return max(MIN_RETRY_SECONDS, work / self.step_times.best_rate(bucket, self.row_limit(bucket)))

    def cancel(self, request_id: str) -> None:
        """Marks the request; it leaves at the next schedule() (or after the step it is in)."""
        request = self._requests.get(request_id)
        if request is not None:
            request.cancel_requested = True

    # ---- one step ----------------------------------------------------------------------------

    def schedule(self) -> StepPlan:
        now = self.clock()
        self._plan_started_at = now
        finished_ids = self._drop_leavers(now)
        ranked = sorted(
            (r for r in self._requests.values() if r.status != RequestStatus.RESTARTING),
            key=lambda r: self.policy.key(r, self._tenant_usage.get(r.tenant, 0.0)),
        )
        if not ranked:
            plan = StepPlan.make_empty()
            plan.finished_ids = finished_ids
            return plan
        head = ranked[0]
        bucket, limit = head.bucket, self.row_limit(head.bucket)
        # seconds a final decode adds to a step; none when the decode stage runs beside the steps
        decode = 0.0 if self.config.pipelined_decodes else self.step_times.decode_seconds(bucket)
        restart = self.step_times.restart_seconds(bucket)  # what a restart inside the step adds
        budget = math.inf  # seconds one step may take
        if self.policy.is_urgent(head):
            led = [head]
            partner = (
                self._sharing_partner(head, ranked, limit, now) if self.config.share_urgent_steps else None
            )
            if partner is not None:  # the two share every step: the budget is their shared step's
                led.append(partner)
            due = sum(_decodes_next_step(r) for r in led)
            restarting = sum(self._inline_restarts_next_step(r) for r in led)
            alone = self._model_seconds(bucket, self._rows_by_grid(led)) + decode * due + restart * restarting
            budget = self.config.interactive_slowdown * alone
        else:  # throughput-bound: the smallest batch with (nearly) the best measured throughput, and
            # no longer than its model call plus one decode and one restart (where those run inside
            # steps): an interactive arrival never waits long
            limit = max(head.rows, self.step_times.best_rows(bucket, limit))
            capped = self.config.batch_step_limit * self.step_times.predict(bucket, 2)
            budget = min(self.step_times.predict(bucket, limit), capped) + decode
            budget += 0.0 if self.config.pipelined_decodes else restart
        chosen: list[EngineRequest] = []
        rows = decodes = restarts = 0
        by_grid: Counter = Counter()  # the plan's rows per DiT call
        seconds = 0.0  # the plan's predicted model time
        for request in ranked:
            if request.bucket != bucket or rows + request.rows > limit:
                continue
            with_it = decodes + _decodes_next_step(request)
            restarts_with_it = restarts + self._inline_restarts_next_step(request)
            grid = self._grid(request)
            call = self.step_times.predict(bucket, by_grid[grid])
            with_seconds = seconds - call + self.step_times.predict(bucket, by_grid[grid] + request.rows)
            if chosen and with_seconds + decode * with_it + restart * restarts_with_it > budget:
                continue
            chosen.append(request)
            rows += request.rows
            decodes = with_it
            restarts = restarts_with_it
            by_grid[grid] += request.rows
            seconds = with_seconds
        chosen_ids = {r.request_id for r in chosen}
        preempted = []
        for request in self._requests.values():
            if request.request_id in chosen_ids:
                request.status = RequestStatus.RUNNING
                if request.first_step_at is None:
                    request.first_step_at = now
            elif request.status == RequestStatus.RUNNING:
                request.status = RequestStatus.PREEMPTED
                preempted.append(request.request_id)
        step_id = self._next_step_id
        self._next_step_id += 1
        return StepPlan(
            step_id=step_id,
            bucket=bucket,
            items=[self._item(r) for r in chosen],
            num_rows=rows,
            preempted_ids=preempted,
            finished_ids=finished_ids,
            decode_finals=not self.config.pipelined_decodes,
        )

    def _grid(self, request: EngineRequest) -> Hashable:
        """The token grid of the request's next step; one for all when grids are not counted."""
        if self._grid_of_step is None or not self.config.calls_per_grid:
            return None
        return self._grid_of_step(request.steps_done)

    def _rows_by_grid(self, requests: list[EngineRequest]) -> Counter:
        """Batch rows per token grid of the requests' next steps: the DiT calls a step of them makes."""
        rows: Counter = Counter()
        for request in requests:
            rows[self._grid(request)] += request.rows
        return rows

    def _model_seconds(self, bucket: ShapeBucket, rows_by_grid: Counter) -> float:
        """Predicted seconds of a step's model calls, one per grid."""
        return sum(self.step_times.predict(bucket, rows) for rows in rows_by_grid.values())

    def _observe(self, plan: StepPlan, result: StepResult) -> None:
        """Feeds the step's model time to the step times: per DiT call when it made several."""
        seconds = result.duration_seconds - result.decode_seconds - result.restart_seconds
        if self.config.calls_per_grid and len(result.call_rows) > 1:
            self.step_times.observe_calls(plan.bucket, result.call_rows, seconds)
        else:
            self.step_times.observe(plan.bucket, plan.num_rows, seconds)

    def _sharing_partner(
        self, head: EngineRequest, ranked: list[EngineRequest], limit: int, now: float
    ) -> EngineRequest | None:
        """The next urgent request of the head's bucket, when running the two together lowers the
        larger of their predicted slowdowns (finish time over time alone, queueing included) below
        what running them one after the other gives; else None.

        With two rows' cost c times one's, sharing costs the head (c - 1) of the steps they share, and
        saves the other the wait for all of the head's: on a GPU (c near 1) they share at once, where
        rows cost time (a CPU, c about 1.7) they share unless the head is already late, and where a
        step costs twice its rows or more they never do. Two at a time: a third urgent request
        waits for one of them to finish.
        """
        partner = next(
            (
                r
                for r in ranked[1:]
                if self.policy.is_urgent(r) and r.bucket == head.bucket and head.rows + r.rows <= limit
            ),
            None,
        )
        if partner is None:
            return None
        times, bucket = self.step_times, head.bucket
        decode = times.decode_seconds(bucket)
        one = {r.request_id: times.predict(bucket, r.rows) for r in (head, partner)}
        # Sharing every step, they keep their places in the grid cycle: one call or two, step after step.
        both = self._model_seconds(bucket, self._rows_by_grid([head, partner]))

        def slowdown(request: EngineRequest, finish: float) -> float:
            restart = self._restart_seconds(request)  # the restart still ahead of it, if any
            alone = (request.num_steps - request.start_step) * one[request.request_id] + decode + restart
            return (now - request.arrival + finish + decode + restart) / alone

        h, p = head.remaining_steps, partner.remaining_steps
        head_alone = h * one[head.request_id]
        one_after_other = max(
            slowdown(head, head_alone), slowdown(partner, head_alone + p * one[partner.request_id])
        )
        shared = min(h, p) * both
        together = max(
            slowdown(head, shared + (h - min(h, p)) * one[head.request_id]),
            slowdown(partner, shared + (p - min(h, p)) * one[partner.request_id]),
        )
        return partner if together < one_after_other else None

    def _item(self, request: EngineRequest) -> StepItem:
        step = request.steps_done + 1 - request.start_step  # steps of this run, counting this one
        total = request.num_steps - request.start_step
        return StepItem(
            request_id=request.request_id,
            step_index=request.steps_done,
            num_steps=request.num_steps,
            guidance_scale=request.guidance_scale,
            rows=request.rows,
            sampler=request.sampler,
            preview=bool(request.preview_every) and step % request.preview_every == 0 and step < total,
            final=step == total,
            restart_inline=self._restarts_inline(request),
        )

    def _drop_leavers(self, now: float) -> list[str]:
        for request in list(self._requests.values()):
            if request.cancel_requested:
                self._finish(request, RequestStatus.FINISHED_CANCELLED, _cancelled_error(request))
            elif request.deadline is not None and now >= request.deadline:
                self._finish(request, RequestStatus.FINISHED_DEADLINE, _deadline_error(request))
        return list(self._leaving)

    def _finish(self, request: EngineRequest, status: RequestStatus, error: KinoError | None) -> None:
        request.status = status
        del self._requests[request.request_id]
        if error is not None:
            self._leaving[request.request_id] = (request, error)

    def update(self, plan: StepPlan, result: StepResult) -> list[DenoiseEvent]:
        """Applies a finished step: new latents, progress, previews, results; leavers get their error."""
        now = self.clock()
        events = [
            self._failed_event(*self._leaving.pop(rid)) for rid in plan.finished_ids if rid in self._leaving
        ]
        if not plan.runs_model:
            return events
        self._observe(plan, result)
        if result.decodes:
            self.step_times.observe_decode(plan.bucket, result.decode_seconds / result.decodes)
        if result.restarts:
            self.step_times.observe_restart(plan.bucket, result.restart_seconds / result.restarts)
        ran_urgent = False
        for item in plan.items:
            request = self._requests.get(item.request_id)
            if request is None:
                continue
            ran_urgent = ran_urgent or request.priority == Priority.INTERACTIVE
            request.sampler.latents = result.latents[item.request_id]
            request.steps_done += 1
            request.last_step_at = now
            self._tenant_usage[request.tenant] = self._tenant_usage.get(request.tenant, 0.0) + item.rows
            if request.cancel_requested:
                self._finish(request, RequestStatus.FINISHED_CANCELLED, None)
                events.append(self._failed_event(request, _cancelled_error(request)))
                continue
            events.append(self._event(request, EventKind.PROGRESS))
            if item.final and plan.decode_finals:
                self._finish(request, RequestStatus.FINISHED_DONE, None)
                events.append(self._event(request, EventKind.RESULT, result.frames[item.request_id]))
            elif item.final:  # leaves the step loop; the decode stage makes its frames
                self._finish(request, RequestStatus.DECODING, None)
                self._due_decodes.append(request)
            else:
                if item.preview:
                    events.append(self._event(request, EventKind.PREVIEW, result.previews[item.request_id]))
                if not item.restart_inline and self._restart_index(request) == item.step_index:
                    request.status = RequestStatus.RESTARTING  # holds no rows until `restarted`
                    self._due_restarts.append(request)
        if ran_urgent:
            self._age(plan, now - self._plan_started_at)
        return events

    def take_decodes(self) -> list[EngineRequest]:
        """Requests whose steps are done and whose frames the decode stage should make, each handed
        out once (their final latents are in `request.sampler.latents`)."""
        due, self._due_decodes = self._due_decodes, []
        return due

    def take_restarts(self) -> list[EngineRequest]:
        """Requests whose step just ended their main schedule, for the decode stage to take through
        the autoencoder (`executor.restart`; their clean latents are in `request.sampler.latents`),
        each handed out once."""
        due, self._due_restarts = self._due_restarts, []
        return due

    def restarted(self, request: EngineRequest, latents, seconds: float) -> None:
        """The decode stage made the latents a request restarts from, in `seconds`: it queues for its
        last steps again. A request that left meanwhile (cancelled, or past its deadline, at a
        `schedule()`) has had its event; the latents are dropped."""
        if self._requests.get(request.request_id) is not request:
            return
        request.sampler.latents = latents
        request.status = RequestStatus.PREEMPTED  # started, and waiting for rows
        self.step_times.observe_restart(request.bucket, seconds)

    def restart_failed(self, request: EngineRequest, error: KinoError) -> list[DenoiseEvent]:
        """The decode stage raised on a request's restart: its FAILED event, unless it left already."""
        if self._requests.get(request.request_id) is not request:
            return []
        self._finish(request, RequestStatus.FINISHED_FAILED, None)
        return [self._failed_event(request, error)]

    def decoded(self, request: EngineRequest, frames, seconds: float) -> DenoiseEvent:
        """The decode stage made a request's frames in `seconds`: its RESULT event."""
        request.status = RequestStatus.FINISHED_DONE
        self.step_times.observe_decode(request.bucket, seconds)
        return self._event(request, EventKind.RESULT, frames)

    def decode_failed(self, request: EngineRequest, error: KinoError) -> DenoiseEvent:
        """The decode stage raised on a request: its FAILED event."""
        request.status = RequestStatus.FINISHED_FAILED
        return self._failed_event(request, error)

    def fail(self, plan: StepPlan, error: KinoError) -> list[DenoiseEvent]:
        """The executor raised on this plan: its requests end with `error`, the others carry on."""
        events = [
            self._failed_event(*self._leaving.pop(rid)) for rid in plan.finished_ids if rid in self._leaving
        ]
        for item in plan.items:
            request = self._requests.get(item.request_id)
            if request is not None:
                self._finish(request, RequestStatus.FINISHED_FAILED, None)
                events.append(self._failed_event(request, error))
        return events

    def _age(self, plan: StepPlan, seconds: float) -> None:
        """Counts an urgent step's time against the batch requests it kept waiting; one away for its
        restart in the decode stage was not kept waiting by it."""
        in_plan = {item.request_id for item in plan.items}
        for request in self._requests.values():
            if (
                request.priority == Priority.BATCH
                and request.request_id not in in_plan
                and request.status != RequestStatus.RESTARTING
                and not request.promoted
            ):
                request.displaced_seconds += seconds
                if request.displaced_seconds >= self.config.aging_seconds:
                    request.promoted = True

    def _event(self, request: EngineRequest, kind: EventKind, frames=None) -> DenoiseEvent:
        return DenoiseEvent(
            request_id=request.request_id,
            kind=kind,
            step=request.steps_done - request.start_step,
            total_steps=request.num_steps - request.start_step,
            queue_seconds=_queue_seconds(request),
            frames=frames,
        )

    def _failed_event(self, request: EngineRequest, error: KinoError) -> DenoiseEvent:
        return DenoiseEvent(
            request_id=request.request_id,
            kind=EventKind.FAILED,
            step=request.steps_done - request.start_step,
            total_steps=request.num_steps - request.start_step,
            queue_seconds=_queue_seconds(request),
            error=error,
        )

    # ---- introspection -----------------------------------------------------------------------

    def row_limit(self, bucket: ShapeBucket) -> int:
        limit = self.config.max_rows
        if self._row_limit is not None:
            limit = min(limit, self._row_limit(bucket))
        return limit

    def get(self, request_id: str) -> EngineRequest | None:
        return self._requests.get(request_id)

    @property
    def num_live(self) -> int:
        return len(self._requests)

    @property
    def num_waiting(self) -> int:
        return sum(1 for r in self._requests.values() if r.status == RequestStatus.WAITING)

    @property
    def has_interactive_work(self) -> bool:
        """Whether an interactive request is live (waiting, or between its steps)."""
        return any(r.priority == Priority.INTERACTIVE for r in self._requests.values())

    def waiting_by_priority(self) -> dict[Priority, int]:
        counts = dict.fromkeys(Priority, 0)
        for request in self._requests.values():
            if request.status == RequestStatus.WAITING:
                counts[request.priority] += 1
        return counts

    @property
    def has_pending(self) -> bool:
        """Whether schedule() has anything to do: requests to run or leavers to report. Requests away
        for their restart are not: `restarted` brings them back."""
        return bool(self._leaving) or any(
            r.status != RequestStatus.RESTARTING for r in self._requests.values()
        )


def _decodes_next_step(request: EngineRequest) -> int:
    """1 when the request's next step ends with its frames decoded, else 0. (Previews are drawn from
    the latents for the price of a matrix product, counted in the step's own time.)"""
    return int(request.steps_done + 1 == request.num_steps)


def _queue_seconds(request: EngineRequest) -> float:
    return 0.0 if request.first_step_at is None else request.first_step_at - request.arrival


def _cancelled_error(request: EngineRequest) -> KinoError:
    return cancelled("JOB_CANCELLED", f"request {request.request_id} was cancelled", by="caller")


def _deadline_error(request: EngineRequest) -> KinoError:
    return deadline_exceeded(
        "DEADLINE_PASSED",
        f"the deadline passed after {request.steps_done} of {request.num_steps} steps",
        steps_done=request.steps_done,
        num_steps=request.num_steps,
    )
