"""Writes that belong to the project as a whole: role groups, staff users, sign-in lockouts, demo users.

Job locks live in config.locks, job runs and periodic jobs in config.jobs, beat entries in config.schedules.
"""

from __future__ import annotations

from typing import Any

from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group, Permission
from django.db import transaction

from config.audit import audit_record
from config.env import local_secret
from config.models import AuditEntry
from config.roles import ADMIN_ONLY, ROLE_PERMISSIONS, Role
from config.schedules import schedules_sync


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
    password = local_secret("DEMO_PASSWORD", nbytes=9)
    user_model = get_user_model()
    for username, role in DEMO_USERS:
        if not user_model.objects.filter(username=username).exists():
            user_create_with_role(username=username, password=password, role=role, email=f"{username}@example.com")
    return password, DEMO_USERS


def sync_after_migrate(**kwargs: Any) -> None:
    """After every `migrate` (and test-database flush): bring role groups and beat entries in line with code
    (connected to post_migrate by ProjectConfig.ready)."""
    roles_sync()
    schedules_sync()
