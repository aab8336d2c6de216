"""Ticket sinks: admins configure instances of sink plugins; deliveries are jobs.

Each new or changed ticket becomes one ``SinkDelivery`` per enabled sink and a
job with retries and backoff. A delivery that fails every attempt is marked
failed, shown to admins, and can be retried by hand — so can one still pending
(waiting for its next try, or stuck). Secret fields (listed under ``"secret"``
in a sink's schema) are never returned to the UI.

A job runs at least once, not exactly once (meiqia/jobs.py: a job whose worker
died mid-delivery runs again). Every delivery therefore carries an idempotency
key, the same on every attempt, in the payload (``idempotency_key``) and, for
the webhook, the ``Idempotency-Key`` header: the receiver drops a repeat.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from meiqia.channels import registry
from meiqia.db import database
from meiqia.jobs import Retry
from meiqia.models import Agent
from meiqia.models import SinkDelivery
from meiqia.models import Ticket
from meiqia.models import TicketSink
from meiqia.models.base import utcnow
from meiqia.plugin_runtime import job_gate
from meiqia.services import outbound
from meiqia.services.accounts import audit
from meiqia.services.accounts import iso
from meiqia.services.accounts import require_admin
from meiqia.services.errors import Conflict
from meiqia.services.errors import NotFound
from meiqia.services.errors import ValidationError
from meiqia.services.ticket_payload import payload_for
from meiqia.services.validation import MASK
from meiqia.services.validation import check
from meiqia.services.validation import merge_secrets
from meiqia.services.validation import plugin_config

log = logging.getLogger(__name__)

#: Attempts after the first, and the waits between them (seconds).
RETRY = Retry(max=4, intervals=(10, 60, 300, 1800))
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class SinkDisabled(RuntimeError):
    """The delivery cannot happen as things stand; retrying on a timer won't help."""


SINK_SCHEMA = {
    "type": "object",
    "required": ["type", "name", "config"],
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string", "maxLength": 40},
        "name": {"type": "string", "minLength": 1, "maxLength": 80},
        "config": {"type": "object"},
        "enabled": {"type": "boolean"},
    },
}
SINK_UPDATE_SCHEMA = {**SINK_SCHEMA, "required": []}


def sink_classes() -> dict[str, type]:
    """Sink classes by type, from every plugin's ``register_ticket_sinks``: asked once
    by ``create_app`` at start-up with the application itself (docs/plugins.md), here
    only for an app made another way."""
    cached = current_app.extensions.get("meiqia.ticket_sinks")
    if cached is None:
        pm = current_app.extensions["meiqia.plugins"]
        cached = {cls.type: cls for cls in pm.call_flat("register_ticket_sinks", app=current_app)}
        current_app.extensions["meiqia.ticket_sinks"] = cached
    return cached


def _class(type_: str) -> type:
    cls = sink_classes().get(type_)
    if cls is None:
        raise ValidationError(f"type: unknown sink; one of {', '.join(sorted(sink_classes()))}",
                              "type")
    return cls


def _secrets(cls: type) -> set[str]:
    return set(cls.configuration_schema().get("secret", []))


def to_dict(sink: TicketSink) -> dict[str, Any]:
    cls = sink_classes().get(sink.type)
    hidden = _secrets(cls) if cls else set()
    config = {k: (MASK if k in hidden and v else v) for k, v in (sink.config or {}).items()}
    failed = SinkDelivery.select().where(SinkDelivery.sink == sink.id,
                                         SinkDelivery.status == "failed").count()
    return {"id": sink.id, "type": sink.type, "name": sink.name, "config": config,
            "enabled": sink.enabled, "failed_deliveries": failed}


def list_sinks(actor: Agent) -> list[dict[str, Any]]:
    require_admin(actor)
    return [to_dict(s) for s in
            TicketSink.select().where(TicketSink.team == actor.team_id).order_by(TicketSink.id)]


def types(lang: str = "zh-CN") -> list[dict[str, Any]]:
    """Every sink class with the schema that drives its admin form; its ``name``, and
    its fields' titles and descriptions, in ``lang`` only. A class names itself and
    its fields as a channel does, a string or ``{"zh-CN": ..., "en": ...}``
    (docs/plugins.md): an admin reads his own language's words, not both (a Chinese
    admin read "企业微信群机器人 / WeCom group robot")."""
    return [{"type": t, "name": registry.display_name(c, lang),
             "schema": registry.form_in_language(c.configuration_schema(), lang)}
            for t, c in sorted(sink_classes().items())]


def _check_config(cls: type, config: dict[str, Any], old: dict[str, Any] | None) -> dict:
    # A secret sent back masked keeps the stored one while where it goes is unchanged.
    merged = merge_secrets(cls.configuration_schema(), config, old)
    schema = {k: v for k, v in cls.configuration_schema().items()
              if k not in ("secret", "secret_bound_to")}
    check(merged, schema, "config")
    plugin_config(cls, merged, make=cls)  # a sink is made as its deliveries make it
    return merged


def create(actor: Agent, data: dict[str, Any]) -> TicketSink:
    require_admin(actor)
    check(data, SINK_SCHEMA)
    cls = _class(data["type"])
    config = _check_config(cls, data["config"], None)
    with database.atomic():
        sink = TicketSink.create(team=actor.team_id, type=data["type"],
                                 name=_name(data["name"]), config=config,
                                 enabled=data.get("enabled", True))
        audit(actor, "sink.create", "ticket_sink", sink.id, {"type": sink.type})
    return sink


def _name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise ValidationError("name: must not be empty", "name")
    return name


def get(actor: Agent, sink_id: int) -> TicketSink:
    require_admin(actor)
    sink = TicketSink.get_or_none(TicketSink.id == sink_id, TicketSink.team == actor.team_id)
    if sink is None:
        raise NotFound("no such ticket sink")
    return sink


def update(actor: Agent, sink_id: int, data: dict[str, Any]) -> TicketSink:
    check(data, SINK_UPDATE_SCHEMA)
    sink = get(actor, sink_id)
    if "type" in data and data["type"] != sink.type:
        raise ValidationError("type: cannot change; add a new sink instead", "type")
    if "config" in data:
        sink.config = _check_config(_class(sink.type), data["config"], sink.config)
    if "name" in data:
        sink.name = _name(data["name"])
    if "enabled" in data:
        sink.enabled = data["enabled"]
    with database.atomic():
        sink.save()
        audit(actor, "sink.update", "ticket_sink", sink.id,
              {k: v for k, v in data.items() if k != "config"})
    return sink


def delete(actor: Agent, sink_id: int) -> None:
    sink = get(actor, sink_id)
    with database.atomic():
        sink.delete_instance()
        audit(actor, "sink.delete", "ticket_sink", sink_id, {"type": sink.type})


def dispatch(ticket: Ticket, kind: str, changes: dict[str, Any]) -> list[int]:
    """One delivery per enabled sink of the team, each a job with retries.

    Called after the ticket's change committed. A queue that cannot take the
    job (Redis down) leaves the delivery failed, visible and retryable.
    """
    ids = []
    # Read the sinks first: a SQLite cursor still being read holds its snapshot,
    # and a write begun under it after another connection committed (the plugin
    # runtime records a failed sink's error from its own thread) is refused at
    # once with "database is locked", whatever busy_timeout says.
    sinks = list(TicketSink.select().where(TicketSink.team == ticket.team_id,
                                           TicketSink.enabled == True))  # noqa: E712
    for sink in sinks:
        with database.atomic():
            delivery = SinkDelivery.create(sink=sink, ticket=ticket, event=kind,
                                           changes=changes)
        _enqueue(delivery.id, f"ticket {ticket.id} → {sink.name}")
        ids.append(delivery.id)
    return ids


def retry_policy() -> Retry:
    """The deliveries' retries: ``SINK_RETRY_SECONDS`` if set, else ``RETRY``."""
    waits = current_app.config.get("SINK_RETRY_SECONDS") or []
    return Retry(max=len(waits), intervals=tuple(waits)) if waits else RETRY


def idempotency_key(delivery: SinkDelivery) -> str:
    """The key a receiver uses to drop a repeat of this delivery: the same on every
    attempt and every manual retry; unique per delivery (its id, and its creation
    time so a rebuilt database does not reuse an old key)."""
    stamp = delivery.created_at.strftime("%Y%m%dT%H%M%S%f")
    return f"meiqia-delivery-{delivery.id}-{stamp}"


def _enqueue(delivery_id: int, description: str) -> None:
    try:
        job_id = current_app.extensions["meiqia.jobs"].enqueue(
            deliver_job, delivery_id, retry=retry_policy(), description=description,
            keep_if_refused=True)  # Redis down: the workers' sweep queues it later
    except Exception as exc:  # noqa: BLE001 - recorded for the admin, not raised
        log.error("cannot queue ticket-sink delivery %s: %s", delivery_id, exc)
        SinkDelivery.update(status="failed", last_error=f"could not queue: {exc}"[:2000],
                            updated_at=utcnow()).where(
            SinkDelivery.id == delivery_id).execute()
        return
    SinkDelivery.update(job_id=job_id).where(SinkDelivery.id == delivery_id).execute()


class SinkFailed(Exception):
    """The sink plugin raised, ran past its budget or is suspended: retried later."""


class SinkRefused(SinkDisabled):
    """The SSRF gate refused the sink's destination (a private address): the same
    destination is refused on every attempt, so the delivery fails at once, with
    the gate's reason (docs/security.md §6)."""


def _call_sink(cls: type, event: str, data: dict[str, Any], config: dict[str, Any],
               changes: dict[str, Any], team_id: int) -> None:
    """``create_ticket``/``update_ticket`` through the plugin runtime: within the
    budget, counted by the breaker, failures named after the plugin."""
    pm = current_app.extensions["meiqia.plugins"]
    sink = cls()
    if event == "created":
        hook, call = "create_ticket", lambda: sink.create_ticket(data, config)
    else:
        hook, call = "update_ticket", lambda: sink.update_ticket(data, config, changes)
    plugin = pm.owner_of(cls) or getattr(cls, "type", "sink")
    refused: list[outbound.OutboundRefused] = []

    def gated() -> Any:
        try:
            return call()
        except Exception as exc:
            refusal = outbound.refusal_in(exc)  # raised by the gate, maybe wrapped
            if refusal is not None:
                refused.append(refusal)
            raise

    if pm.runtime.is_off(plugin, team_id):
        raise SinkDisabled(f"the plugin {plugin} is turned off for this team (Plugins page)")
    # No breaker: a sink fails when one team's receiver is down, and the job
    # retries with backoff; suspending the plugin would stop every team's sink.
    # One delivery at a time inside one sink (plugin_runtime.job_gate): a sink
    # that hangs holds one shared job thread or worker loop, and after a timeout
    # none for one more budget.
    budget = pm.runtime.budget(hook)
    try:
        with job_gate.one_call_inside(plugin, str(getattr(cls, "type", "") or plugin),
                                      budget) as inside:
            _result, failure = pm.runtime.run(plugin, hook, gated, {}, team_id=team_id,
                                              breaker=False)
            if failure is not None and failure.kind == "timeout":
                inside.keep()
    except job_gate.Busy:
        raise SinkFailed(f"the sink {getattr(cls, 'type', plugin)} is still busy with "
                         "another delivery (one at a time); retried later") from None
    if failure is not None:
        if refused and outbound.is_permanent(refused[0]):
            raise SinkRefused(str(refused[0]))
        raise SinkFailed(failure.describe())


def deliver_job(delivery_id: int) -> str:
    """Job: deliver one ticket event to one sink; raise to be retried.

    The last attempt that fails marks the delivery failed (shown to admins). A
    delivery already delivered (a repeat of the job) is not sent again.
    """
    delivery = SinkDelivery.get_or_none(SinkDelivery.id == delivery_id)
    if delivery is None:  # the sink or the ticket was deleted meanwhile
        return "gone"
    if delivery.status == "delivered":
        return "delivered already"
    sink = delivery.sink
    attempts = delivery.attempts + 1
    try:
        if not sink.enabled:
            raise SinkDisabled("the sink was disabled; enable it and retry")
        cls = sink_classes().get(sink.type)
        if cls is None:
            raise SinkDisabled(f"no plugin provides the sink type {sink.type!r} any more")
        data = payload_for(delivery.ticket, delivery.event, delivery.changes or {})
        data["delivery_id"] = delivery.id
        data["idempotency_key"] = idempotency_key(delivery)
        _call_sink(cls, delivery.event, data, dict(sink.config), delivery.changes or {},
                   sink.team_id)
    except Exception as exc:
        final = isinstance(exc, SinkDisabled) or attempts >= retry_policy().max + 1
        SinkDelivery.update(attempts=attempts, last_error=f"{type(exc).__name__}: {exc}"[:2000],
                            status="failed" if final else "pending",
                            updated_at=utcnow()).where(SinkDelivery.id == delivery_id).execute()
        if final and isinstance(exc, SinkDisabled):
            return "failed: " + str(exc)  # retrying would not help
        raise
    SinkDelivery.update(attempts=attempts, status="delivered", last_error="",
                        updated_at=utcnow()).where(SinkDelivery.id == delivery_id).execute()
    return "delivered"


def deliveries(actor: Agent, status: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
    """The team's deliveries, newest first (``status="failed"``: what needs a look)."""
    require_admin(actor)
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationError(f"status: must be one of {', '.join(DELIVERY_STATUSES)}",
                              "status")
    query = (SinkDelivery.select(SinkDelivery, TicketSink).join(TicketSink)
             .where(TicketSink.team == actor.team_id))
    if status:
        query = query.where(SinkDelivery.status == status)
    return [{"id": d.id, "sink_id": d.sink_id, "sink": d.sink.name, "sink_type": d.sink.type,
             "ticket_id": d.ticket_id, "event": d.event, "status": d.status,
             "attempts": d.attempts, "last_error": d.last_error,
             "created_at": iso(d.created_at), "updated_at": iso(d.updated_at)}
            for d in query.order_by(SinkDelivery.id.desc()).limit(limit)]


def retry(actor: Agent, delivery_id: int) -> int:
    """An admin retries an undelivered delivery now (with a fresh round of retries).

    Failed or pending alike: a pending one may wait half an hour for its next
    try, or be stuck. Its waiting job is cancelled first (it is not running: one
    being sent right now is refused, to retry once it ended), so the delivery
    has one job; the idempotency key stays, so a receiver that got it drops it.
    """
    require_admin(actor)
    delivery = (SinkDelivery.select().join(TicketSink)
                .where(SinkDelivery.id == delivery_id, TicketSink.team == actor.team_id).first())
    if delivery is None:
        raise NotFound("no such delivery")
    if delivery.status == "delivered":
        raise Conflict("this delivery was delivered; there is nothing to retry")
    from meiqia.models import JobRecord

    if delivery.job_id and JobRecord.select().where(
            JobRecord.id == delivery.job_id, JobRecord.status == "started").exists():
        raise Conflict("this delivery is being sent right now; retry once it ends")
    updated = SinkDelivery.update(status="pending", attempts=0, last_error="",
                                  updated_at=utcnow()).where(
        SinkDelivery.id == delivery.id, SinkDelivery.status == delivery.status,
        SinkDelivery.updated_at == delivery.updated_at).execute()
    if not updated:  # another admin clicked first, or its job just ran
        raise Conflict("this delivery changed meanwhile; look again before retrying")
    if delivery.job_id:  # its waiting job is replaced by the new one
        JobRecord.update(status="failed", error="replaced by a manual retry",
                         finished_at=utcnow()).where(
            JobRecord.id == delivery.job_id, JobRecord.status == "queued").execute()
    audit(actor, "sink.retry", "sink_delivery", delivery.id, {})
    _enqueue(delivery.id, f"retry delivery {delivery.id}")
    return delivery.id
