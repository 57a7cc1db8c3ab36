"""Fit rules become condition trees in the segment language (issue 20: one condition language everywhere).

Each rule's attribute/operator/value becomes the equivalent tree:
- a trait was read from the customer's traits, else the account's: `trait.<key>` OR (`trait.<key>` is not set AND
  `account.trait.<key>`), each trait declared as a custom property (number for between/at least, text otherwise)
  when it is not declared yet;
- `email_domain` is `customer.email_domain`; `free_mail` is `customer.free_mail` (the trial loop's property reading
  the score settings' list when evaluated); on a trait, `free_mail` is `one_of` today's list;
- `equals` / `one_of` compared lowercased text; the segment language compares exactly, so the written and the
  lowercase forms are both listed (and the number, for a value that is one);
- `between low-high` is `between [low, high]`, `gte` is `gte`; a number rule now needs a JSON number (text "50"
  no longer counts as 50);
- a rule that cannot be said in the language (an attribute that is not a trait key, a number test on a key declared
  as text, a value that is not a number) keeps its row with a condition that never holds and "(not converted: …)"
  in its label, so no rule is lost silently.
Each rule changed and each trait declared here is recorded in the audit log (via "system"), so the team can see
why the rules read differently. Reversible for the shapes this conversion makes (and the default rules, which have them); a tree of another shape
(written later in the full language) goes back as a rule that never matches, its tree named in the label.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import migrations, models
from django.utils import timezone

MIGRATION = "trials.0017_fit_rules_as_conditions"  # the audit entries' author

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NUMBER_OPERATORS = ("between", "gte")
FREE_MAIL_DEFAULT = (
    "gmail.com yahoo.com hotmail.com outlook.com icloud.com proton.me protonmail.com aol.com gmx.com mail.com "
    "yandex.com live.com"
)


class NotConverted(Exception):
    pass


def _group(operator: str, *children: dict[str, Any], negate: bool = False) -> dict[str, Any]:
    return {"type": "group", "operator": operator, "negate": negate, "children": list(children)}


def _leaf(prop: str, operator: str, value: Any = None) -> dict[str, Any]:
    leaf = {"type": "condition", "property": prop, "operator": operator}
    return leaf if value is None else {**leaf, "value": value}


NEVER = _group(
    "and",
    _group("or", _leaf("customer.email", "is_set"), _leaf("customer.email", "is_not_set")),
    negate=True,
)


def _number(text: str) -> float | int:
    number = float(text.strip())
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(text)
    return int(number) if number.is_integer() else number


def _forms(value: str) -> list[Any]:
    """The old case-insensitive comparison's items as exact values: written, lowercase, and the number."""
    forms: list[Any] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        for form in (item, item.lower()):
            if form not in forms:
                forms.append(form)
        try:
            number = _number(item)
        except ValueError:
            continue
        if number not in forms:
            forms.append(number)
    if not forms:
        raise NotConverted("no value")
    return forms


def _test(operator: str, value: str, free_mail: list[str]) -> tuple[str, Any]:
    """The operator and value of the leaf an old rule becomes."""
    if operator in ("equals", "one_of"):
        forms = _forms(value) if operator == "one_of" else _forms(value.replace(",", "\0"))
        forms = [form.replace("\0", ",") if isinstance(form, str) else form for form in forms]
        return ("equals", forms[0]) if len(forms) == 1 else ("one_of", forms)
    if operator in ("contains", "ends_with"):
        if not value.strip():
            raise NotConverted("no value")
        return operator, value.strip()
    if operator == "gte":
        try:
            return "gte", _number(value)
        except ValueError as error:
            raise NotConverted(f"{value!r} is not a number") from error
    if operator == "between":
        low, _, high = value.partition("-")
        try:
            bounds = [_number(low), _number(high)]
        except ValueError as error:
            raise NotConverted(f"{value!r} is not low-high") from error
        if bounds[0] > bounds[1]:
            raise NotConverted(f"{value!r}: low above high")
        return "between", bounds
    if operator == "free_mail":
        return "one_of", free_mail
    raise NotConverted(f"unknown operator {operator!r}")


def _declared(declare: Any, scope: str, key: str, value_type: str, created: list[Any]) -> None:
    existing = declare.objects.filter(scope=scope, key=key).first()
    if existing is None:
        created.append(declare.objects.create(scope=scope, key=key, label=key, value_type=value_type))
    elif existing.value_type != value_type:
        raise NotConverted(f"{scope} trait {key} is declared as {existing.value_type}, the rule needs {value_type}")


def condition_of(rule: Any, declare: Any, free_mail: list[str], created: list[Any]) -> dict[str, Any]:
    """The tree an old rule becomes (NotConverted when it cannot be said)."""
    attribute, operator, value = rule.attribute.strip(), rule.operator, rule.value or ""
    if attribute == "email_domain":
        if operator == "free_mail":
            return _group("and", _leaf("customer.free_mail", "is_true"))
        if operator in NUMBER_OPERATORS:
            raise NotConverted("an email domain is not a number")
        test, wanted = _test(operator, value.lower(), free_mail)
        return _group("and", _leaf("customer.email_domain", test, wanted))
    if not KEY.match(attribute):
        raise NotConverted(f"{attribute!r} is not a trait key")
    value_type = "number" if operator in NUMBER_OPERATORS else "string"
    test, wanted = _test(operator, value, free_mail)
    for scope in ("customer", "account"):
        _declared(declare, scope, attribute, value_type, created)
    customer = _leaf(f"trait.{attribute}", test, wanted)
    account = _group(
        "and", _leaf(f"trait.{attribute}", "is_not_set"), _leaf(f"account.trait.{attribute}", test, wanted)
    )
    return _group("and", _group("or", customer, account))


def convert(apps: Any, schema_editor: Any) -> None:
    rule_model = apps.get_model("trials", "FitRule")
    declare = apps.get_model("segments", "CustomProperty")
    settings = apps.get_model("trials", "ScoreSettings").objects.filter(pk=1).first()
    free_mail = sorted(set((settings.free_mail_domains if settings else FREE_MAIL_DEFAULT).lower().split()))
    audit = apps.get_model("project", "AuditEntry")
    now = timezone.now()
    created: list[Any] = []
    entries = []
    for rule in rule_model.objects.order_by("pk"):
        label = rule.label
        try:
            rule.condition = condition_of(rule, declare, free_mail, created)
        except NotConverted as reason:
            described = rule.label or f"{rule.attribute} {rule.operator} {rule.value}"
            rule.condition = NEVER
            rule.label = f"{described} (not converted: {reason})"[:255]
        rule.save(update_fields=["condition", "label"])
        changes = {
            "attribute": [rule.attribute, None],
            "operator": [rule.operator, None],
            "value": [rule.value, None],
            "condition": [None, rule.condition],
        }
        if rule.label != label:
            changes["label"] = [label, rule.label]
        entries.append((rule.pk, rule.label, "changed", "trials.FitRule", changes))
    for declared in created:
        changes = {"scope": [None, declared.scope], "key": [None, declared.key], "value_type": [None, declared.value_type]}
        entries.append((declared.pk, f"{declared.scope} {declared.key}", "created", "segments.CustomProperty", changes))
    audit.objects.bulk_create(
        [
            audit(
                at=now, actor_name=MIGRATION, via="system", action=action, model=model, object_id=str(pk),
                object_repr=str(text)[:200], changes=changes,
            )
            for pk, text, action, model, changes in entries
        ]  # fmt: skip
    )


def _text(value: Any) -> str:
    if isinstance(value, list):
        seen: list[str] = []
        for item in (_text(v) for v in value):
            if item.lower() not in [known.lower() for known in seen]:
                seen.append(item)
        return ", ".join(seen)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _old_test(leaf: dict[str, Any]) -> tuple[str, str]:
    operator, value = leaf.get("operator"), leaf.get("value")
    if operator == "between":
        return "between", f"{_text(value[0])}-{_text(value[1])}"
    if operator in ("equals", "one_of", "contains", "ends_with", "gte"):
        return str(operator), _text(value)
    raise NotConverted(f"operator {operator!r}")


def mini_rule_of(tree: dict[str, Any]) -> tuple[str, str, str]:
    """The (attribute, operator, value) of a tree of a shape `condition_of` makes (NotConverted otherwise)."""
    children = tree.get("children") or []
    if tree.get("type") != "group" or tree.get("negate") or len(children) != 1:
        raise NotConverted("shape")
    node = children[0]
    if node.get("type") == "condition" and node.get("property") == "customer.free_mail":
        return "email_domain", "free_mail", ""
    if node.get("type") == "condition" and node.get("property") == "customer.email_domain":
        return ("email_domain", *_old_test(node))
    either = node.get("children") or []
    if node.get("type") != "group" or node.get("operator") != "or" or len(either) != 2:
        raise NotConverted("shape")
    customer, account = either
    prop = str(customer.get("property", ""))
    if not prop.startswith("trait.") or account.get("type") != "group" or len(account.get("children", [])) != 2:
        raise NotConverted("shape")
    unset, on_account = account["children"]
    key = prop.removeprefix("trait.")
    same = {k: v for k, v in customer.items() if k != "property"} == {
        k: v for k, v in on_account.items() if k != "property"
    }
    if unset != _leaf(prop, "is_not_set") or on_account.get("property") != f"account.trait.{key}" or not same:
        raise NotConverted("shape")
    return (key, *_old_test(customer))


def convert_back(apps: Any, schema_editor: Any) -> None:
    rule_model = apps.get_model("trials", "FitRule")
    for rule in rule_model.objects.order_by("pk"):
        try:
            rule.attribute, rule.operator, rule.value = mini_rule_of(rule.condition)
        except (NotConverted, AttributeError, IndexError, KeyError, TypeError):
            rule.attribute, rule.operator, rule.value = "condition", "equals", ""  # matches nobody
            rule.label = f"{rule.label} (condition: {rule.condition})"[:255]
        rule.save(update_fields=["attribute", "operator", "value", "label"])


class Migration(migrations.Migration):
    dependencies = [
        ("project", "0003_audit_log"),
        ("segments", "0007_membership_published"),
        ("trials", "0016_stripe_mirror_to_integrations"),
    ]

    operations = [
        migrations.AddField(
            model_name="fitrule", name="condition", field=models.JSONField(default=dict), preserve_default=False
        ),
        # Defaults on the old columns, so that going back can add them again to existing rows.
        migrations.AlterField(
            model_name="fitrule", name="attribute", field=models.CharField(default="", max_length=100)
        ),
        migrations.AlterField(
            model_name="fitrule",
            name="operator",
            field=models.CharField(
                default="",
                max_length=10,
                choices=[
                    ("equals", "equals"),
                    ("one_of", "is one of (comma-separated)"),
                    ("contains", "contains"),
                    ("ends_with", "ends with"),
                    ("between", "is between (low-high)"),
                    ("gte", "is at least"),
                    ("free_mail", "is a free-mail domain"),
                ],
            ),
        ),
        migrations.AlterField(
            model_name="fitrule", name="value", field=models.CharField(blank=True, default="", max_length=500)
        ),
        migrations.RunPython(convert, convert_back),
        migrations.RemoveField(model_name="fitrule", name="attribute"),
        migrations.RemoveField(model_name="fitrule", name="operator"),
        migrations.RemoveField(model_name="fitrule", name="value"),
    ]
