"""The composition root: ``build_gateway(settings)`` wires every part exactly once.

The CLI and the tests both call it; nothing else constructs stores, transports or the
pipeline, and there are no module globals. Edges (clock, transport) can be passed in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path

from mailgate.actions import AgentActions
from mailgate.addresses import OurAddresses
from mailgate.agent_notices import AgentNotices
from mailgate.apply import Applier
from mailgate.clock import Clock, utc_now
from mailgate.committer import GroupCommitter
from mailgate.confidential import ConfidentialRules
from mailgate.config import Settings
from mailgate.confirmation import Confirmations
from mailgate.development import DevelopmentActions
from mailgate.errors import ConfigError
from mailgate.interpret import WordReader
from mailgate.notifications import Notifier
from mailgate.outbound.compose import Composer
from mailgate.outbound.dispatcher import Dispatcher
from mailgate.outbound.transports import Transport, transport_from_settings
from mailgate.pipeline import Pipeline
from mailgate.policy import sla_policy
from mailgate.prepare_pool import PreparePool
from mailgate.preparer import Preparer
from mailgate.ratelimit import RecipientGate
from mailgate.resolver import DnsResolver
from mailgate.schedule import Scheduler
from mailgate.screen import OwnMail
from mailgate.sources.imap import ImapPoller
from mailgate.triage import TriageRules
from mailgate.trust import TrustKeeper
from mailgate.workflow import Workflow
from store.db import Database
from store.dbblobs import DatabaseBlobStore
from store.locks import LockKeeper
from store.meta import server_secret
from store.raw import Blobs, BlobStore
from store.sla import SlaPolicy


@dataclass
class Gateway:
    settings: Settings
    db: Database
    raws: Blobs
    blobs: Blobs
    composer: Composer
    notifier: Notifier
    actions: AgentActions
    pipeline: Pipeline
    transport: Transport
    dispatcher: Dispatcher
    clock: Clock
    ours: OurAddresses
    trust: TrustKeeper
    sla: SlaPolicy
    workflow: Workflow
    scheduler: Scheduler
    _committers: list[GroupCommitter] = field(default_factory=list)
    _locks: LockKeeper | None = None

    def committer(self) -> GroupCommitter:
        """A started group committer (one per listener); stopped by ``close``."""
        committer = GroupCommitter(self.pipeline, max_batch=self.settings.store.batch_size)
        committer.start()
        self._committers.append(committer)
        return committer

    def prepare_pool(self, processes: int | None = None, *, wait: bool = True) -> PreparePool:
        """Where mails are prepared (``mailgate.prepare_pool``), started: in ``processes``
        (default ``[smtp] prepare_processes``) child processes, or in the gateway's own
        threads when that is 0 or the blobs are kept in the database (a child has no
        store connection). ``wait``: for the children to be ready (else the gateway's
        threads prepare until they are)."""
        smtp = self.settings.smtp
        wanted = smtp.prepare_processes if processes is None else processes
        pool = PreparePool(
            self.settings,
            processes=wanted if self.settings.store.blobs == "files" else 0,
            threads=smtp.workers,
            fallback=self.pipeline.prepare,
        )
        pool.start(wait=wait)
        return pool

    def imap_pollers(self) -> list[ImapPoller]:
        """One poller per configured ``[[imap]]`` mailbox (not started); each polls only
        while it holds its mailbox's lock, so gateways sharing the store take turns."""
        return [
            ImapPoller(m, self.pipeline, self.db, self.clock, locks=self.locks())
            for m in self.settings.imap
        ]

    def locks(self) -> LockKeeper:
        """The cluster-wide locks this gateway holds (made on first use)."""
        if self._locks is None:
            self._locks = LockKeeper(self.db)
        return self._locks

    def close(self) -> None:
        for committer in self._committers:
            committer.stop()
        self._committers.clear()
        if self._locks is not None:
            self._locks.close()
            self._locks = None
        self.pipeline.close()
        self.db.dispose()


def build_gateway(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    transport: Transport | None = None,
    upgrade: bool = True,
) -> Gateway:
    override_dir = _override_dir(settings)  # before anything is opened that needs closing
    db = Database(settings.store.url, busy_timeout_ms=settings.store.busy_timeout_ms)
    if upgrade:
        db.upgrade()
    secret = _secret(settings, db)
    ours = OurAddresses.of(settings.smtp.addresses)
    from_address = parseaddr(settings.outbound.from_)[1].lower()
    composer = Composer(settings.outbound, secret, clock, override_dir=override_dir)
    notifier = Notifier(composer, ours, from_address, RecipientGate(settings.limits))
    sla = sla_policy(settings.workflow, settings.sla)
    actions = AgentActions(notifier, settings.workflow.sectors, sla)
    trust = _trust_keeper(
        settings,
        secret=secret,
        ours=ours,
        from_address=from_address,
        notifier=notifier,
    )
    workflow = Workflow(
        sla,
        AgentNotices(notifier, settings.workflow.timezone),
        DevelopmentActions(notifier, sla),
    )
    applier = Applier(
        notifier,
        actions,
        settings.workflow.sectors[0],
        workflow,
        attachment_limits=settings.attachments,
        trust=trust,
        copied_per_ticket=settings.limits.copied_per_ticket,
    )
    raws, blobs = _blob_stores(settings, db)
    pipeline = Pipeline(
        db=db,
        preparer=build_preparer(settings, raws, blobs),
        ours=ours,
        applier=applier,
        clock=clock,
        signed_ids=composer,
    )
    transport = transport or transport_from_settings(settings.outbound)
    dispatcher = Dispatcher(
        db, transport, clock, settings.outbound, lease_seconds=settings.outbound.lease_seconds
    )
    scheduler = Scheduler(db, workflow, notifier, dispatcher, settings.workflow, clock)
    return Gateway(
        settings,
        db,
        raws,
        blobs,
        composer,
        notifier,
        actions,
        pipeline,
        transport,
        dispatcher,
        clock,
        ours,
        trust,
        sla=sla,
        workflow=workflow,
        scheduler=scheduler,
    )


def build_preparer(settings: Settings, raws: Blobs, blobs: Blobs) -> Preparer:
    """The half of the pipeline that needs no store (``mailgate.preparer``)."""
    ours = OurAddresses.of(settings.smtp.addresses)
    from_address = parseaddr(settings.outbound.from_)[1].lower()
    domain = settings.outbound.message_id_domain or from_address.rpartition("@")[2]
    own = OwnMail(
        addresses=tuple(dict.fromkeys((*ours.addresses, from_address))), message_id_domain=domain
    )
    return Preparer(
        raws=raws,
        blobs=blobs,
        own=own,
        auth_policy=settings.auth,
        attachment_limits=settings.attachments,
        resolver=DnsResolver(settings.auth.dns_resolver, timeout=settings.auth.dns_timeout),
        words=WordReader(
            TriageRules.load(), ConfidentialRules.load(settings.auth.confidential_rules)
        ),
    )


def file_preparer(settings: Settings) -> Preparer:
    """A preparer of its own, for a child process: only with blobs kept in folders
    (``[store] blobs = "files"``), which need no store connection."""
    if settings.store.blobs == "database":
        raise ConfigError("preparing in child processes needs blobs kept in folders")
    return build_preparer(settings, *_blob_stores(settings, None))


def _trust_keeper(
    settings: Settings,
    *,
    secret: bytes,
    ours: OurAddresses,
    from_address: str,
    notifier: Notifier,
) -> TrustKeeper:
    # Confirmation tokens ride on a plus-address of ours: the From address when it is ours.
    base = from_address if ours.is_ours(from_address) else ours.addresses[0]
    confirmations = Confirmations(
        secret, ours, base, timedelta(hours=settings.auth.confirmation_hours)
    )
    quiet = timedelta(days=settings.limits.bounce_quiet_days)
    return TrustKeeper(notifier, confirmations, quiet)


def _blob_stores(settings: Settings, db: Database | None) -> tuple[Blobs, Blobs]:
    """Where raw mails and attachments are kept: (raws, attachments)."""
    if settings.store.blobs == "database":
        assert db is not None
        in_db = DatabaseBlobStore(db)
        return in_db, in_db
    return BlobStore(settings.store.raw, suffix=".eml"), BlobStore(settings.store.attachments)


def _override_dir(settings: Settings) -> Path | None:
    """The admins' template folder; a configured one that is missing is a config error."""
    configured = settings.templates.override_dir
    if not configured:
        return None
    folder = Path(configured)
    if not folder.is_dir():
        # Said at start-up: otherwise every mail would quietly use the built-in templates.
        raise ConfigError(f"templates.override_dir is not a folder: {folder}")
    return folder


def _secret(settings: Settings, db: Database) -> bytes:
    """``$MAILGATE_SECRET`` (or the configured variable) if set, else the store's own."""
    value = os.environ.get(settings.outbound.secret_env)
    if value:
        return value.encode()
    return server_secret(db)
