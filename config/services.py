"""Writes that belong to the project as a whole: role groups, staff users, job locks and job runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.audit import audit_record
from config.models import AuditEntry, TaskLock, TaskRun, Timer
from config.roles import ADMIN_ONLY, ROLE_PERMISSIONS, Role


def roles_sync() -> dict[str, int]:
    """Create the role groups and set their permissions exactly as config.roles declares. Idempotent.

    Returns the number of permissions each role ended up with.
    """
    result: dict[str, int] = {}
    for role, wanted in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        if wanted == ADMIN_ONLY:
            permissions = list(Permission.objects.all())
        else:
            permissions = []
            for dotted in wanted:
                app_label, codename = dotted.split(".", 1)
                permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(permissions)
        result[role.value] = len(permissions)
    return result


def user_create_with_role(*, username: str, password: str, role: Role, email: str = "", **extra: Any) -> AbstractUser:
    """Create (or update) a staff user holding exactly one role.

    Admins also get `is_staff` so Django's admin accepts them; other roles never do.
    """
    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(username=username, defaults={"email": email, **extra})
    user.set_password(password)
    user.is_staff = role == Role.ADMIN
    user.email = email or user.email
    user.save()
    user.groups.set([Group.objects.get(name=role.value)])
    return user


def _try_acquire(name: str, holder: str, ttl: timedelta) -> bool:
    now = timezone.now()
    with transaction.atomic():
        taken = TaskLock.objects.filter(name=name, expires_at__lte=now).update(holder=holder, expires_at=now + ttl)
        if taken:
            return True
        try:
            with transaction.atomic():
                TaskLock.objects.create(name=name, holder=holder, expires_at=now + ttl)
        except IntegrityError:
            return False
    return True


@contextmanager
def task_lock(name: str, *, ttl: timedelta = timedelta(minutes=10)) -> Iterator[bool]:
    """Hold the named lease for the duration of the block; yields False when another run holds it.

    The lease expires after `ttl`, so a crashed worker cannot block the job for ever.
    """
    holder = uuid.uuid4().hex
    acquired = _try_acquire(name, holder, ttl)
    try:
        yield acquired
    finally:
        if acquired:
            TaskLock.objects.filter(name=name, holder=holder).delete()


@contextmanager
def task_run_recorded(name: str) -> Iterator[TaskRun]:
    """Record a periodic job's run (start, end, outcome, details) around the block.

    The block fills `run.detail`; an exception marks the run failed and is re-raised for Celery's retry.
    """
    run = TaskRun.objects.create(name=name, started_at=timezone.now())
    try:
        yield run
    except Exception as error:
        run.outcome = TaskRun.Outcome.FAILED
        run.detail = {**run.detail, "error": f"{type(error).__name__}: {error}"}
        raise
    else:
        if run.outcome == TaskRun.Outcome.RUNNING:
            run.outcome = TaskRun.Outcome.SUCCEEDED
    finally:
        run.finished_at = timezone.now()
        run.save(update_fields=["outcome", "detail", "finished_at"])


def schedules_sync(*, reset: bool = False) -> dict[str, list[str]]:
    """Bring django-celery-beat's table in line with config.schedules. Idempotent.

    Missing entries are created and obsolete ones removed. An entry that exists keeps the interval and the
    enabled switch an admin may have changed in the admin, unless `reset` restores the declared values. Entries
    name no queue: Celery's routes (config.queues) pick it when beat sends, so switching the queue mode needs no
    re-sync.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from config.schedules import SCHEDULE_PREFIX, SCHEDULES

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


def housekeeping_run() -> dict[str, int]:
    """Delete what has outlived its use: expired sessions, expired job locks, job runs older than 30 days, and
    the applied-batch ledger of computed traits after 7 days (a task is never retried that late), failed
    sign-ins (django-axes' attempts) once they are out of the cool-off window, and durable timers a week after
    they fired.

    Runs under a lock so two beat ticks never overlap; each step is one set-based DELETE.
    """
    from django.contrib.sessions.models import Session

    from audiences.models import AppliedEventBatch

    with task_lock("housekeeping") as acquired, task_run_recorded("housekeeping") as run:
        if not acquired:
            run.outcome = TaskRun.Outcome.SKIPPED
            return {}
        now = timezone.now()
        sessions, _ = Session.objects.filter(expire_date__lt=now).delete()
        locks, _ = TaskLock.objects.filter(expires_at__lt=now).delete()
        runs, _ = TaskRun.objects.filter(started_at__lt=now - timedelta(days=30)).delete()
        batches, _ = AppliedEventBatch.objects.filter(applied_at__lt=now - timedelta(days=7)).delete()
        sign_ins, _ = AccessAttempt.objects.filter(attempt_time__lt=now - settings.AXES_COOLOFF_TIME).delete()
        timers, _ = Timer.objects.filter(fired_at__lt=now - timedelta(days=7)).delete()
        run.detail = {
            "expired_sessions": sessions,
            "expired_locks": locks,
            "old_task_runs": runs,
            "old_applied_batches": batches,
            "old_sign_in_failures": sign_ins,
            "old_fired_timers": timers,
        }
        return dict(run.detail)


@transaction.atomic
def sign_in_unlock(*, username: str, ip_address: str | None) -> int:
    """Lift the lockout of a username from one address (an admin, from the staff UI): forget its counted
    failures, and record who did it in the audit log. Returns how many attempt rows were removed (0: nothing
    was locked, say because the lockout had just ended)."""
    attempts = AccessAttempt.objects.select_for_update().filter(username=username, ip_address=ip_address)
    rows = list(attempts.order_by("-attempt_time"))
    if not rows:
        return 0
    failures = sum(row.failures_since_start for row in rows)
    removed, _ = attempts.delete()
    audit_record(
        model="axes.AccessAttempt",
        object_id=str(rows[0].pk),
        object_repr=f"Sign-in lockout of {username} from {ip_address or 'an unknown address'}"[:200],
        action=AuditEntry.Action.DELETED,
        changes={"username": [username, None], "ip_address": [ip_address, None], "failures": [failures, None]},
    )
    return int(removed)


DEMO_USERS: list[tuple[str, Role]] = [
    ("admin", Role.ADMIN),
    ("growth", Role.GROWTH),
    ("cs", Role.CS),
    ("rep1", Role.SALES_REP),
    ("rep2", Role.SALES_REP),
]


def demo_users_ensure() -> tuple[str, list[tuple[str, Role]]]:
    """Create one demo user per role (and a second rep) sharing one password generated for this install.

    The password lives in var/demo_password.txt (git-ignored), so no credential is ever in the repository
    and a second `make run` prints the same login. Existing users are left as they are.
    """
    from config.env import local_secret

    password = local_secret("DEMO_PASSWORD", nbytes=9)
    user_model = get_user_model()
    for username, role in DEMO_USERS:
        if not user_model.objects.filter(username=username).exists():
            user_create_with_role(username=username, password=password, role=role, email=f"{username}@example.com")
    return password, DEMO_USERS
