"""Whose batch of rows is published next, free of I/O: the importer's publishing loop asks before every batch.

The rules, in order:

1. **Pacing.** An import may hand on a batch only while its rows handed on and not yet answered by identity (its
   ``in_flight``) leave room in its window (``Windows.per_import``), and a bulk import only while the bulk lane as
   a whole leaves room in ``Windows.total``. An import with nothing in flight (or a lane with nothing in flight)
   may always send one batch, so a window smaller than a batch slows an import down but never stops it.
   Nothing is ever dropped: an import without room waits for answers.
2. **Interactive first.** An import on the interactive lane (at most ingest's bulk threshold of rows) is served
   before any bulk import; the total window does not hold it back.
3. **Fair share.** Among the imports that may send, the organizer furthest behind its share goes next: start-time
   fair queuing over rows, each organizer weighted (``weight_of``). An organizer's start tag is
   ``max(clock, its finish tag)``, a batch of ``rows`` moves its finish tag to ``start + rows / weight``, and the
   clock moves to the start tag served; so an organizer that waited (idle, or out of room) is not owed a burst
   when it comes back. Among one organizer's imports the same rule shares the organizer's turns (weight 1 each).
   Ties go to the earlier claim.

Since identity answers each lane in the order rows were published, handing rows on in these shares gives each
organizer that share of identity's throughput on the lane once the total window is what limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Windows:
    """Rows handed on and not yet answered that one import (``per_import``) and the bulk lane (``total``) may
    have."""

    per_import: int
    total: int


@dataclass(frozen=True)
class Claim:
    """An import asking to hand on its next batch of ``rows``, with ``in_flight`` rows unanswered."""

    import_id: str
    organizer_id: str
    rows: int
    in_flight: int
    interactive: bool = False


@dataclass(frozen=True)
class Tags:
    """Start-time fair queuing among keys: the clock and each key's finish tag."""

    clock: float = 0.0
    finish: Mapping[str, float] = field(default_factory=dict)

    def start(self, key: str) -> float:
        return max(self.clock, self.finish.get(key, self.clock))

    def served(self, key: str, cost: float) -> Tags:
        start = self.start(key)
        return Tags(clock=start, finish={**self.finish, key: start + cost})

    def keeping(self, keys: Iterable[str]) -> Tags:
        kept = set(keys)
        return Tags(clock=self.clock, finish={key: tag for key, tag in self.finish.items() if key in kept})


@dataclass(frozen=True)
class Shares:
    """What fairness remembers: the organizers' tags and, per organizer, its imports' tags."""

    organizers: Tags = field(default_factory=Tags)
    imports: Mapping[str, Tags] = field(default_factory=dict)


def may_send(claim: Claim, *, windows: Windows, bulk_in_flight: int) -> bool:
    """Rule 1 (pacing): room in the import's window and, for a bulk import, in the bulk lane's."""
    own = claim.in_flight == 0 or claim.in_flight + claim.rows <= windows.per_import
    if claim.interactive:
        return own
    return own and (bulk_in_flight == 0 or bulk_in_flight + claim.rows <= windows.total)


def next_turn(
    shares: Shares, claims: Sequence[Claim], *, windows: Windows, bulk_in_flight: int
) -> Claim | None:
    """The claim to serve now (rules 1-3), or None when no claim may send."""
    ready = [claim for claim in claims if may_send(claim, windows=windows, bulk_in_flight=bulk_in_flight)]
    ready = [claim for claim in ready if claim.interactive] or ready
    if not ready:
        return None
    organizer = min(ready, key=lambda c: shares.organizers.start(c.organizer_id)).organizer_id
    inner = shares.imports.get(organizer, Tags())
    return min((c for c in ready if c.organizer_id == organizer), key=lambda c: inner.start(c.import_id))


def served(shares: Shares, claim: Claim, *, weight_of: Callable[[str], float]) -> Shares:
    """The shares once ``claim`` was served."""
    organizer = claim.organizer_id
    inner = shares.imports.get(organizer, Tags()).served(claim.import_id, float(claim.rows))
    return Shares(
        organizers=shares.organizers.served(organizer, claim.rows / weight_of(organizer)),
        imports={**shares.imports, organizer: inner},
    )


def forget(shares: Shares, *, active: Iterable[tuple[str, str]]) -> Shares:
    """Keep the tags of the (organizer, import) pairs still ``active`` only; the clocks stay."""
    pairs = list(active)
    organizers = {organizer for organizer, _ in pairs}
    imports = {
        organizer: tags.keeping(import_id for o, import_id in pairs if o == organizer)
        for organizer, tags in shares.imports.items() if organizer in organizers
    }
    return replace(shares, organizers=shares.organizers.keeping(organizers), imports=imports)


def weights(table: Mapping[str, float], default: float = 1.0) -> Callable[[str], float]:
    """``weight_of`` from a table of organizers' weights (the others weigh ``default``)."""
    return lambda organizer_id: table.get(organizer_id, default)
