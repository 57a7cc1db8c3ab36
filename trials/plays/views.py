"""Staff pages of the sales-assist queue: the rep queue, an alert with its brief and actions, the manager's team
load, the plays list and editor, business hours and holidays, and the rep's away switch. Thin: every write goes
through trials.plays.alerts / trials.plays.plays."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from config.permissions import StaffPermissionMixin
from trials.plays.alerts import (
    AlertActionError,
    alert_claim,
    alert_dismiss,
    alert_done,
    alert_for_user,
    alert_release,
    alert_snooze,
    alerts_queue,
    alerts_snoozed,
    business_hours_settings,
    is_manager,
    rep_profile,
    rep_set_away,
    team_load,
)
from trials.plays.briefs import brief_refresh, play_variable_names
from trials.plays.forms import BusinessHoursForm, DismissForm, DoneForm, HolidayForm, PlayForm, SnoozeForm
from trials.plays.models import Holiday, Play
from trials.plays.plays import play_save

QUEUE_LIMIT = 200


class AlertQueueView(StaffPermissionMixin, TemplateView):
    """My alerts and the unassigned ones by SLA due time then priority, overdue ones highlighted."""

    template_name = "trials/alerts_queue.html"
    required_permissions = ("trials.view_alert",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        now = timezone.now()
        user = self.request.user
        everyone = self.request.GET.get("all") == "1" and is_manager(user)
        return {
            **super().get_context_data(**kwargs),
            "alerts": list(alerts_queue(user, now=now, everyone=everyone)[:QUEUE_LIMIT]),
            "snoozed": list(alerts_snoozed(user, now=now)[:QUEUE_LIMIT]),
            "now": now,
            "everyone": everyone,
            "manager": is_manager(user),
            "away": rep_profile(user).away,
            "limit": QUEUE_LIMIT,
        }


class AlertDetailView(StaffPermissionMixin, TemplateView):
    """One alert: the frozen call-prep brief, the suggested message and the actions."""

    template_name = "trials/alerts_detail.html"
    required_permissions = ("trials.view_alert",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        alert = alert_for_user(alert_id=kwargs["pk"], user=self.request.user)
        if alert is None:
            raise Http404("No such alert in your queue.")
        now = timezone.now()
        return {
            **super().get_context_data(**kwargs),
            "alert": alert,
            "brief": alert.brief,
            "now": now,
            "overdue": alert.status in ("open", "claimed", "snoozed") and alert.due_at < now,
            "mine": alert.assignee_id == self.request.user.pk,
            "snooze_form": SnoozeForm(),
            "done_form": DoneForm(),
        }


class AlertActionView(StaffPermissionMixin, View):
    """POST claim / release / snooze / done / dismiss / refresh; errors come back as a message on the page."""

    required_permissions = ("trials.view_alert", "trials.change_alert")
    ACTIONS = ("claim", "release", "snooze", "done", "dismiss", "refresh")

    def post(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        if action not in self.ACTIONS:
            raise Http404("Unknown action.")
        user = request.user
        if alert_for_user(alert_id=pk, user=user) is None:  # another rep's alert is not there for this one
            raise Http404("No such alert in your queue.")
        back = reverse("alert-detail", args=[pk])
        try:
            if action == "claim":
                alert_claim(alert_id=pk, user=user)
                messages.success(request, "Claimed: the alert is yours.")
            elif action == "release":
                alert_release(alert_id=pk, user=user)
                messages.success(request, "Released to the unassigned queue.")
                back = reverse("alert-queue")
            elif action == "snooze":
                snooze = SnoozeForm(request.POST)
                if not snooze.is_valid():
                    raise AlertActionError("invalid", "Give a valid date and time to snooze until.")
                alert_snooze(alert_id=pk, user=user, until=snooze.cleaned_data["until"])
                messages.success(request, "Snoozed.")
                back = reverse("alert-queue")
            elif action == "done":
                done = DoneForm(request.POST)
                if not done.is_valid():
                    raise AlertActionError("invalid", "Choose an outcome (notes at most 5000 characters).")
                alert_done(alert_id=pk, user=user, **done.cleaned_data)
                messages.success(request, "Done — outcome recorded.")
            elif action == "dismiss":
                dismiss = DismissForm(request.POST)
                notes = dismiss.cleaned_data["notes"] if dismiss.is_valid() else ""
                alert_dismiss(alert_id=pk, user=user, notes=notes)
                messages.success(request, "Dismissed.")
                back = reverse("alert-queue")
            else:
                brief_refresh(alert_id=pk)
                messages.success(request, "Brief refreshed from the latest data.")
        except AlertActionError as refused:
            if refused.code == "not_found":
                raise Http404(refused.message) from refused
            if refused.code == "forbidden":
                raise PermissionDenied(refused.message) from refused
            messages.error(request, refused.message)
            response = HttpResponseRedirect(back)
            response.status_code = 303
            return response
        return HttpResponseRedirect(back)


class RepAwayView(StaffPermissionMixin, View):
    """A rep marks themselves away (skipped by round-robin) or back."""

    required_permissions = ("trials.change_alert",)

    def post(self, request: HttpRequest) -> HttpResponse:
        away = request.POST.get("away") == "1"
        rep_set_away(user=request.user, away=away)
        messages.success(request, "You are away: new alerts go to other reps." if away else "Welcome back.")
        return HttpResponseRedirect(reverse("alert-queue"))


class TeamLoadView(StaffPermissionMixin, TemplateView):
    """Managers: each rep's open, claimed, snoozed and overdue alerts, and SLA attainment over 30 days."""

    template_name = "trials/alerts_team.html"
    required_permissions = ("trials.view_alert", "trials.view_all_alerts")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        loads = team_load(now=timezone.now())
        met, missed = sum(r.met for r in loads), sum(r.missed for r in loads)
        overall = round(100 * met / (met + missed)) if met + missed else None
        return {**super().get_context_data(**kwargs), "loads": loads, "overall": overall}


class PlayListView(StaffPermissionMixin, TemplateView):
    template_name = "trials/plays_list.html"
    required_permissions = ("trials.view_play",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "plays": list(Play.objects.all())}


class PlayEditView(StaffPermissionMixin, View):
    """Create (no pk) or edit a play; GET shows it read-only to those who may only view plays."""

    required_permissions = ("trials.view_play",)

    def _render(self, request: HttpRequest, form: PlayForm, play: Play | None, status: int = 200) -> HttpResponse:
        can_edit = request.user.has_perm("trials.change_play" if play else "trials.add_play")
        context = {"form": form, "play": play, "can_edit": can_edit, "variables": play_variable_names()}
        return render(request, "trials/plays_edit.html", context, status=status)

    def _play(self, pk: int | None) -> Play | None:
        return get_object_or_404(Play, pk=pk) if pk is not None else None

    def get(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        play = self._play(pk)
        if play is None and not request.user.has_perm("trials.add_play"):
            raise PermissionDenied("Your role does not allow creating plays.")
        return self._render(request, PlayForm(instance=play), play)

    def post(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        play = self._play(pk)
        if not request.user.has_perm("trials.change_play" if play else "trials.add_play"):
            raise PermissionDenied("Your role does not allow editing plays.")
        form = PlayForm(request.POST, instance=play)
        if not form.is_valid():
            return self._render(request, form, play, status=400)
        saved = play_save(form.save(commit=False))
        messages.success(request, f"Saved “{saved.name}”.")
        return HttpResponseRedirect(reverse("play-list"))


class BusinessHoursView(StaffPermissionMixin, View):
    """Working hours and holidays the SLA clock counts by; Growth and Admin change them, reps read them."""

    required_permissions = ("trials.view_businesshours",)

    def _render(
        self, request: HttpRequest, form: BusinessHoursForm, holiday: HolidayForm, status: int = 200
    ) -> HttpResponse:
        context = {
            "form": form,
            "holiday_form": holiday,
            "holidays": list(Holiday.objects.all()),
            "can_edit": request.user.has_perm("trials.change_businesshours"),
        }
        return render(request, "trials/alerts_settings.html", context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self._render(request, BusinessHoursForm(instance=business_hours_settings()), HolidayForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        settings_row = business_hours_settings()
        what = request.POST.get("form", "hours")
        if what == "holiday":
            if not request.user.has_perm("trials.add_holiday"):
                raise PermissionDenied("Your role does not allow adding holidays.")
            holiday = HolidayForm(request.POST)
            if not holiday.is_valid():
                return self._render(request, BusinessHoursForm(instance=settings_row), holiday, status=400)
            holiday.save()
            messages.success(request, "Holiday added.")
        elif what == "delete-holiday":
            if not request.user.has_perm("trials.delete_holiday"):
                raise PermissionDenied("Your role does not allow removing holidays.")
            raw = request.POST.get("holiday", "")
            if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is true, yet int("²") raises
                messages.error(request, "Choose a holiday to remove.")
                return self._render(request, BusinessHoursForm(instance=settings_row), HolidayForm(), status=400)
            Holiday.objects.filter(pk=int(raw)).delete()
            messages.success(request, "Holiday removed.")
        else:
            if not request.user.has_perm("trials.change_businesshours"):
                raise PermissionDenied("Your role does not allow changing business hours.")
            form = BusinessHoursForm(request.POST, instance=settings_row)
            if not form.is_valid():
                return self._render(request, form, HolidayForm(), status=400)
            form.save()
            messages.success(request, "Business hours saved; new alerts use them.")
        return HttpResponseRedirect(reverse("business-hours"))
