"""Periodic jobs' beat entries: a registry each app fills with its own jobs, and the sync into beat's tables.

Beat keeps a handful of static entries that each find their due work in the database — never one entry per
customer, segment or campaign. Every app declares its jobs next to their code with `config.jobs.periodic_job`,
which registers the entry here when the app's tasks module is imported (ProjectConfig.ready imports every
installed app's tasks module, as Celery's worker does, so the registry is complete in every process);
`manage.py sync_schedules` (and every `migrate`) writes the registry into django-celery-beat's tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from django_celery_beat.models import IntervalSchedule, PeriodicTask


@dataclass(frozen=True)
class PeriodicSchedule:
    """One beat entry: which task runs and how often (its queue comes from config.queues)."""

    name: str
    task: str
    every_seconds: int
    description: str


# Filled by config.jobs.periodic_job, in the order the tasks modules are imported.
SCHEDULES: list[PeriodicSchedule] = []

# Beat entries this project owns carry this prefix, so syncing never touches entries an admin added by hand.
SCHEDULE_PREFIX = "trialloop: "


def schedule_register(schedule: PeriodicSchedule) -> None:
    """Add a beat entry to the registry; registering the same entry again (a module imported twice) is a no-op,
    while two different entries under one name are a mistake."""
    for existing in SCHEDULES:
        if existing.name == schedule.name:
            if existing != schedule:
                raise ValueError(f"two periodic jobs are named {schedule.name!r}: {existing.task}, {schedule.task}")
            return
    SCHEDULES.append(schedule)


def schedules_sync(*, reset: bool = False) -> dict[str, list[str]]:
    """Bring django-celery-beat's table in line with the registry. Idempotent.

    Missing entries are created and obsolete ones removed. An entry that exists keeps the interval and the
    enabled switch an admin may have changed in the admin, unless `reset` restores the declared values. Entries
    name no queue: Celery's routes (config.queues) pick it when beat sends, so switching the queue mode needs no
    re-sync.
    """
    report: dict[str, list[str]] = {"created": [], "updated": [], "removed": [], "unchanged": []}
    declared_names = set()
    for schedule in SCHEDULES:
        name = f"{SCHEDULE_PREFIX}{schedule.name}"
        declared_names.add(name)
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=schedule.every_seconds, period=IntervalSchedule.SECONDS
        )
        task = PeriodicTask.objects.filter(name=name).first()
        if task is None:
            PeriodicTask.objects.create(
                name=name,
                task=schedule.task,
                interval=interval,
                queue=None,
                description=schedule.description,
            )
            report["created"].append(schedule.name)
            continue
        changed = task.task != schedule.task or task.queue is not None or task.description != schedule.description
        task.task, task.queue, task.description = schedule.task, None, schedule.description
        if reset and (task.interval_id != interval.pk or not task.enabled):
            task.interval, task.enabled = interval, True
            task.crontab = task.solar = task.clocked = None
            changed = True
        if changed:
            task.save()
            report["updated"].append(schedule.name)
        else:
            report["unchanged"].append(schedule.name)
    obsolete = PeriodicTask.objects.filter(name__startswith=SCHEDULE_PREFIX).exclude(name__in=declared_names)
    report["removed"] = [name.removeprefix(SCHEDULE_PREFIX) for name in obsolete.values_list("name", flat=True)]
    obsolete.delete()
    return report
