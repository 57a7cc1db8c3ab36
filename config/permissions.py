"""One permission check for the staff UI and the API: the role's model permissions (see config.roles)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import AccessMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from rest_framework.permissions import DjangoModelPermissions

from config.roles import is_admin


class RoleModelPermissions(DjangoModelPermissions):
    """DRF's model permissions, with reads requiring the `view` permission too (DRF lets any user read)."""

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


class IsAdminRole(DjangoModelPermissions):
    """Only the Admin role (sources, secrets, users)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and is_admin(request.user))


class StaffPermissionMixin(AccessMixin):
    """Staff UI views: sign-in required, then the listed model permissions (403 when missing).

    `admin_only` restricts a view to the Admin role regardless of permissions.
    """

    required_permissions: tuple[str, ...] = ()
    admin_only = False

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if self.admin_only and not is_admin(request.user):
            raise PermissionDenied("Only admins may open this page.")
        if not request.user.has_perms(self.required_permissions):
            raise PermissionDenied("Your role does not allow this page.")
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc,no-any-return]
