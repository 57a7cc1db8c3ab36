"""Staff UI pages for trials (list, loop board, loop settings) and subscriptions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from config.pagination import paginate_for_ui
from config.permissions import StaffPermissionMixin
from trials.loop import selectors
from trials.loop.filters import SubscriptionFilter, TrialFilter
from trials.loop.forms import ActivationDefinitionForm, FitRuleForm, ScoreSettingsForm
from trials.loop.lifecycle import activation_definition, days_left
from trials.loop.models import FitRule
from trials.loop.scores import condition_text, score_settings
from trials.loop.settings import activation_definition_update, fit_rule_create, fit_rule_delete, score_settings_update

BOARD_PERIODS = (7, 30, 90)


class TrialListView(StaffPermissionMixin, TemplateView):
    """Current trials with stage, fit, PQL and days left, the soonest to end first."""

    template_name = "trials/trial_list.html"
    required_permissions = ("trials.view_trial", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        filterset = TrialFilter(self.request.GET, queryset=selectors.trial_list())
        queryset = filterset.qs if filterset.is_valid() else selectors.trial_list().none()
        page = paginate_for_ui(self.request, queryset, ordering="ends_at")
        now = timezone.now()
        for trial in page.items:
            trial.days_left = (
                max(0, days_left(trial, now)) if trial.stage in ("trigger", "activate", "habit", "signal") else None
            )
        return {**super().get_context_data(**kwargs), "filter": filterset, "page": page}


class LoopBoardView(StaffPermissionMixin, TemplateView):
    """Trials per stage now and the flows between stages over a chosen period."""

    template_name = "trials/loop_board.html"
    required_permissions = ("trials.view_trial",)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        try:
            days = int(self.request.GET.get("days", "30"))
        except ValueError:
            days = 30
        days = days if days in BOARD_PERIODS else 30
        board = selectors.loop_board(days=days, now=timezone.now())
        return {**super().get_context_data(**kwargs), "board": board, "days": days, "periods": BOARD_PERIODS}


class TrialSettingsView(StaffPermissionMixin, TemplateView):
    """The activation and habit definition, score weights and fit rules: Growth and Admin change them, CS and
    Sales reps read them."""

    template_name = "trials/settings.html"
    required_permissions = ("trials.view_activationdefinition", "trials.view_fitrule", "trials.view_scoresettings")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        user = self.request.user
        return {
            **super().get_context_data(**kwargs),
            "definition_form": kwargs.get("definition_form")
            or ActivationDefinitionForm(instance=activation_definition()),
            "score_form": kwargs.get("score_form") or ScoreSettingsForm(instance=score_settings()),
            "rule_form": kwargs.get("rule_form") or FitRuleForm(),
            "rules": [(rule, condition_text(rule.condition)) for rule in FitRule.objects.all()],
            "can_change_definition": user.has_perm("trials.change_activationdefinition"),
            "can_change_scores": user.has_perm("trials.change_scoresettings"),
            "can_add_rule": user.has_perm("trials.add_fitrule"),
            "can_delete_rule": user.has_perm("trials.delete_fitrule"),
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        which = request.POST.get("form")
        if which == "definition":
            if not request.user.has_perm("trials.change_activationdefinition"):
                raise PermissionDenied
            definition_form = ActivationDefinitionForm(request.POST, instance=activation_definition())
            if not definition_form.is_valid():
                return self.render_to_response(self.get_context_data(definition_form=definition_form))
            data = {field: definition_form.cleaned_data[field] for field in ActivationDefinitionForm.Meta.fields}
            data["habit_events"] = definition_form.cleaned_data["habit_events_text"]
            data["activation_condition"] = definition_form.cleaned_data["condition_text"]
            activation_definition_update(data=data)
            messages.success(request, "Activation definition saved; open trials are re-derived by the next sweep.")
        elif which == "scores":
            if not request.user.has_perm("trials.change_scoresettings"):
                raise PermissionDenied
            score_form = ScoreSettingsForm(request.POST, instance=score_settings())
            if not score_form.is_valid():
                return self.render_to_response(self.get_context_data(score_form=score_form))
            score_settings_update(
                data={field: score_form.cleaned_data[field] for field in ScoreSettingsForm.Meta.fields}
            )
            messages.success(request, "Score settings saved; open trials are re-scored by the next sweep.")
        elif which == "rule":
            if not request.user.has_perm("trials.add_fitrule"):
                raise PermissionDenied
            rule_form = FitRuleForm(request.POST)
            if not rule_form.is_valid():
                return self.render_to_response(self.get_context_data(rule_form=rule_form))
            fit_rule_create(
                data={
                    "label": rule_form.cleaned_data["label"],
                    "points": rule_form.cleaned_data["points"],
                    "condition": rule_form.cleaned_data["condition_text"],
                }
            )
            messages.success(request, "Fit rule added.")
        return HttpResponseRedirect(reverse("trial-settings"))


class FitRuleDeleteView(StaffPermissionMixin, View):
    required_permissions = ("trials.delete_fitrule",)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        rule = get_object_or_404(FitRule, pk=pk)
        fit_rule_delete(rule_id=rule.pk)
        messages.success(request, "Fit rule deleted.")
        return HttpResponseRedirect(reverse("trial-settings"))


class SubscriptionListView(StaffPermissionMixin, TemplateView):
    template_name = "trials/subscription_list.html"
    required_permissions = ("integrations.view_subscription", "audiences.view_customer")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        filterset = SubscriptionFilter(self.request.GET, queryset=selectors.subscription_list())
        queryset = filterset.qs if filterset.is_valid() else selectors.subscription_list().none()
        return {
            **super().get_context_data(**kwargs),
            "filter": filterset,
            "page": paginate_for_ui(self.request, queryset, ordering="-started_at"),
        }
