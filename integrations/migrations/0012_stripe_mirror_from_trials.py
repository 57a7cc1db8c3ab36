"""The Stripe mirror moves from the trials app to integrations (integrations.stripe.models), keeping its tables.

State only: each model is created in integrations' migration state with `db_table` naming the table it has had
since trials.0002 (trials.0016 then removes them from trials' state, and offers.0006 and trials.0016 point their
foreign keys at integrations.Subscription); no table, index or constraint is touched.

What does change in the database is the app label rows carry: the content types of the moved models are relabelled
trials → integrations, so their permissions — and every group and user granted one — follow the models, and the
audit log's entries for the billing settings and currency rates are relabelled so the log's filter still finds an
object's whole history. Reversible: going back relabels integrations → trials.
"""

from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

import django.db.models.deletion

#: Model names (lower case, as content types keep them) of the models that moved.
MOVED = (
    "product", "plan", "addon", "subscription", "subscriptionaddon", "stripecustomer", "coupon", "discount",
    "charge", "invoice", "billingsettings", "currencyrate",
)  # fmt: skip
#: The moved models the audit log records (config.audit.AUDITED), by their class names.
AUDITED = ("BillingSettings", "CurrencyRate")


def _relabel(apps: StateApps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    AuditEntry = apps.get_model("project", "AuditEntry")
    taken = set(ContentType.objects.filter(app_label=new, model__in=MOVED).values_list("model", flat=True))
    ContentType.objects.filter(app_label=old, model__in=set(MOVED) - taken).update(app_label=new)
    for name in AUDITED:
        AuditEntry.objects.filter(model=f"{old}.{name}").update(model=f"{new}.{name}")


def forward(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _relabel(apps, "trials", "integrations")


def backward(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    _relabel(apps, "integrations", "trials")


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('project', '0003_audit_log'),
        ('trials', '0015_message_send_at_local_time'),
        ('audiences', '0012_pending_event_batch'),
        ('integrations', '0011_standard_webhooks_secrets'),
    ]

    operations = [
        # The tables exist already (trials.0002 and later made them): only the migration state gains the models.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='BillingSettings',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('currency', models.CharField(default='usd', help_text='ISO code, e.g. usd, eur, jpy.', max_length=3)),
                        ('account_metadata_key', models.CharField(blank=True, help_text="Stripe customer metadata key holding the account's group id (e.g. company_id); empty: not used.", max_length=100)),
                        ('account_by_email_domain', models.BooleanField(default=False, help_text="Map by the email's domain when exactly one account has it (free-mail excluded).")),
                    ],
                    options={
                        'verbose_name_plural': 'billing settings',
                        'db_table': 'trials_billingsettings',
                    },
                ),
                migrations.CreateModel(
                    name='Coupon',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_coupon_id', models.CharField(max_length=255, unique=True)),
                        ('name', models.CharField(blank=True, max_length=255)),
                        ('percent_off', models.DecimalField(blank=True, decimal_places=2, max_digits=5, null=True)),
                        ('amount_off_cents', models.BigIntegerField(blank=True, null=True)),
                        ('currency', models.CharField(blank=True, max_length=3)),
                        ('duration', models.CharField(blank=True, choices=[('', 'No discount'), ('once', 'Once'), ('repeating', 'Repeating'), ('forever', 'Forever')], max_length=10)),
                        ('duration_in_months', models.PositiveIntegerField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'trials_coupon',
                    },
                ),
                migrations.CreateModel(
                    name='Discount',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_discount_id', models.CharField(max_length=255, unique=True)),
                        ('stripe_customer_id', models.CharField(blank=True, db_index=True, max_length=255)),
                        ('stripe_subscription_id', models.CharField(blank=True, db_index=True, help_text='Empty for a customer-wide discount.', max_length=255)),
                        ('coupon_id', models.CharField(blank=True, help_text="Empty until the discount's coupon is known.", max_length=255)),
                        ('start', models.DateTimeField(blank=True, null=True)),
                        ('end', models.DateTimeField(blank=True, help_text='When a repeating coupon stops applying.', null=True)),
                        ('removed_at', models.DateTimeField(blank=True, null=True)),
                        ('stripe_state_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'trials_discount',
                        'ordering': ['stripe_discount_id'],
                    },
                ),
                migrations.CreateModel(
                    name='Product',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_product_id', models.CharField(blank=True, max_length=255, null=True, unique=True)),
                        ('name', models.CharField(max_length=255)),
                        ('description', models.TextField(blank=True)),
                        ('active', models.BooleanField(default=True)),
                        ('metadata', models.JSONField(blank=True, default=dict)),
                    ],
                    options={
                        'db_table': 'trials_product',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='CurrencyRate',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('currency', models.CharField(max_length=3, unique=True)),
                        ('rate', models.DecimalField(decimal_places=10, max_digits=20)),
                    ],
                    options={
                        'db_table': 'trials_currencyrate',
                        'ordering': ['currency'],
                        'constraints': [models.CheckConstraint(condition=models.Q(('rate__gt', 0)), name='currency_rate_positive')],
                    },
                ),
                migrations.CreateModel(
                    name='Plan',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_price_id', models.CharField(blank=True, max_length=255, null=True, unique=True)),
                        ('name', models.CharField(max_length=255)),
                        ('amount_cents', models.BigIntegerField(default=0, help_text="Unit amount per interval, in the currency's smallest unit (per-unit prices).")),
                        ('amount_decimal', models.DecimalField(blank=True, decimal_places=12, help_text="Stripe's unit_amount_decimal when it has fractions of the smallest unit; else empty.", max_digits=24, null=True)),
                        ('currency', models.CharField(default='usd', max_length=3)),
                        ('interval', models.CharField(choices=[('day', 'Day'), ('week', 'Week'), ('month', 'Month'), ('year', 'Year')], default='month', max_length=5)),
                        ('interval_count', models.PositiveSmallIntegerField(default=1)),
                        ('usage_type', models.CharField(choices=[('licensed', 'Licensed (per seat)'), ('metered', 'Metered')], default='licensed', max_length=10)),
                        ('billing_scheme', models.CharField(choices=[('per_unit', 'Per unit'), ('tiered', 'Tiered')], default='per_unit', max_length=8)),
                        ('tiers_mode', models.CharField(blank=True, choices=[('', 'Not tiered'), ('graduated', 'Graduated'), ('volume', 'Volume')], default='', max_length=9)),
                        ('tiers', models.JSONField(blank=True, default=list, help_text='Tiers of a tiered price: [{"up_to": N or null, "unit_amount": "…", "flat_amount": "…"}], amounts as decimal text in the smallest unit.')),
                        ('transform_divide_by', models.PositiveIntegerField(blank=True, help_text='Package pricing: the quantity is divided by this before pricing.', null=True)),
                        ('transform_round', models.CharField(blank=True, help_text='up or down (package pricing).', max_length=4)),
                        ('active', models.BooleanField(default=True)),
                        ('product', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='plans', to='integrations.product')),
                    ],
                    options={
                        'db_table': 'trials_plan',
                        'ordering': ['product__name', 'amount_cents'],
                    },
                ),
                migrations.CreateModel(
                    name='AddOn',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_price_id', models.CharField(blank=True, max_length=255, null=True, unique=True)),
                        ('name', models.CharField(max_length=255)),
                        ('amount_cents', models.BigIntegerField(default=0, help_text="Unit amount per interval, in the currency's smallest unit (per-unit prices).")),
                        ('amount_decimal', models.DecimalField(blank=True, decimal_places=12, help_text="Stripe's unit_amount_decimal when it has fractions of the smallest unit; else empty.", max_digits=24, null=True)),
                        ('currency', models.CharField(default='usd', max_length=3)),
                        ('interval', models.CharField(choices=[('day', 'Day'), ('week', 'Week'), ('month', 'Month'), ('year', 'Year')], default='month', max_length=5)),
                        ('interval_count', models.PositiveSmallIntegerField(default=1)),
                        ('usage_type', models.CharField(choices=[('licensed', 'Licensed (per seat)'), ('metered', 'Metered')], default='licensed', max_length=10)),
                        ('billing_scheme', models.CharField(choices=[('per_unit', 'Per unit'), ('tiered', 'Tiered')], default='per_unit', max_length=8)),
                        ('tiers_mode', models.CharField(blank=True, choices=[('', 'Not tiered'), ('graduated', 'Graduated'), ('volume', 'Volume')], default='', max_length=9)),
                        ('tiers', models.JSONField(blank=True, default=list, help_text='Tiers of a tiered price: [{"up_to": N or null, "unit_amount": "…", "flat_amount": "…"}], amounts as decimal text in the smallest unit.')),
                        ('transform_divide_by', models.PositiveIntegerField(blank=True, help_text='Package pricing: the quantity is divided by this before pricing.', null=True)),
                        ('transform_round', models.CharField(blank=True, help_text='up or down (package pricing).', max_length=4)),
                        ('active', models.BooleanField(default=True)),
                        ('product', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='add_ons', to='integrations.product')),
                    ],
                    options={
                        'db_table': 'trials_addon',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='StripeCustomer',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_customer_id', models.CharField(max_length=255, unique=True)),
                        ('link_method', models.CharField(blank=True, choices=[('', 'Not linked'), ('stripe_id', 'Stored Stripe id'), ('email', 'Email'), ('user_id', 'metadata.user_id'), ('manual', 'Linked by hand')], default='', max_length=10)),
                        ('unlinked_reason', models.CharField(blank=True, max_length=255)),
                        ('email', models.EmailField(blank=True, max_length=254)),
                        ('name', models.CharField(blank=True, max_length=255)),
                        ('metadata', models.JSONField(blank=True, default=dict)),
                        ('deleted', models.BooleanField(default=False)),
                        ('stripe_state_at', models.DateTimeField(blank=True, null=True)),
                        ('account_reason', models.CharField(blank=True, help_text='How the account was found, or why not.', max_length=255)),
                        ('account', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='stripe_customers', to='audiences.account')),
                        ('customer', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='stripe_customers', to='audiences.customer')),
                    ],
                    options={
                        'db_table': 'trials_stripecustomer',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Subscription',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_subscription_id', models.CharField(blank=True, max_length=255, null=True, unique=True)),
                        ('status', models.CharField(choices=[('incomplete', 'Incomplete'), ('incomplete_expired', 'Incomplete, expired'), ('trialing', 'Trialing'), ('active', 'Active'), ('past_due', 'Past due'), ('canceled', 'Canceled'), ('unpaid', 'Unpaid'), ('paused', 'Paused')], max_length=20)),
                        ('currency', models.CharField(blank=True, help_text="Stripe's currency of the subscription.", max_length=3)),
                        ('quantity', models.PositiveIntegerField(default=1)),
                        ('started_at', models.DateTimeField(help_text='When the subscription was created (Stripe start_date).')),
                        ('trial_start', models.DateTimeField(blank=True, null=True)),
                        ('trial_end', models.DateTimeField(blank=True, null=True)),
                        ('current_period_start', models.DateTimeField(blank=True, null=True)),
                        ('current_period_end', models.DateTimeField(blank=True, null=True)),
                        ('cancel_at_period_end', models.BooleanField(default=False)),
                        ('canceled_at', models.DateTimeField(blank=True, null=True)),
                        ('ended_at', models.DateTimeField(blank=True, null=True)),
                        ('pause_resumes_at', models.DateTimeField(blank=True, help_text='Set while collection is paused.', null=True)),
                        ('coupon_id', models.CharField(blank=True, max_length=255)),
                        ('discount_percent', models.DecimalField(blank=True, decimal_places=2, max_digits=5, null=True)),
                        ('discount_amount_cents', models.BigIntegerField(blank=True, null=True)),
                        ('discount_duration', models.CharField(blank=True, choices=[('', 'No discount'), ('once', 'Once'), ('repeating', 'Repeating'), ('forever', 'Forever')], default='', max_length=10)),
                        ('discount_ids', models.JSONField(blank=True, default=list, help_text="Stripe ids of the subscription's discounts, in Stripe's order.")),
                        ('cancellation_details', models.JSONField(blank=True, default=dict, help_text="Stripe's cancellation reason, feedback and comment.")),
                        ('mrr_amount', models.BigIntegerField(default=0, help_text='Normalised monthly recurring revenue in the smallest unit of `currency`.')),
                        ('mrr_cents', models.BigIntegerField(blank=True, default=0, help_text='The MRR in hundredths of the workspace currency; empty when `currency` has no rate.', null=True)),
                        ('paid_cents', models.BigIntegerField(default=0, help_text="What this subscription's invoices were paid, in cents: its lifetime value.")),
                        ('stripe_state_at', models.DateTimeField(blank=True, null=True)),
                        ('stripe_state', models.JSONField(blank=True, default=dict, help_text='What ordering needs of the event that wrote this state: its lifecycle fields and previous_attributes (events of the same second are ordered from these).')),
                        ('metadata', models.JSONField(blank=True, default=dict)),
                        ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='subscriptions', to='audiences.customer')),
                        ('plan', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='subscriptions', to='integrations.plan')),
                    ],
                    options={
                        'db_table': 'trials_subscription',
                        'ordering': ['-started_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Invoice',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_invoice_id', models.CharField(max_length=255, unique=True)),
                        ('stripe_subscription_id', models.CharField(blank=True, db_index=True, max_length=255)),
                        ('status', models.CharField(max_length=20)),
                        ('amount_paid_cents', models.BigIntegerField(default=0)),
                        ('currency', models.CharField(max_length=3)),
                        ('created_at_stripe', models.DateTimeField()),
                        ('line_amounts', models.JSONField(blank=True, default=dict, help_text="What this invoice billed per price for its subscription's items (prorations left out): {price id: amount in the smallest unit}. Values metered prices, and tiered ones whose tiers are unknown.")),
                        ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='invoices', to='audiences.customer')),
                        ('subscription', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='invoices', to='integrations.subscription')),
                    ],
                    options={
                        'db_table': 'trials_invoice',
                        'ordering': ['-created_at_stripe'],
                    },
                ),
                migrations.CreateModel(
                    name='SubscriptionAddOn',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('quantity', models.PositiveIntegerField(default=1)),
                        ('stripe_item_id', models.CharField(blank=True, max_length=255, null=True, unique=True)),
                        ('add_on', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='subscription_items', to='integrations.addon')),
                        ('subscription', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='add_on_items', to='integrations.subscription')),
                    ],
                    options={
                        'db_table': 'trials_subscriptionaddon',
                    },
                ),
                migrations.AddField(
                    model_name='subscription',
                    name='add_ons',
                    field=models.ManyToManyField(blank=True, related_name='subscriptions', through='integrations.SubscriptionAddOn', to='integrations.addon'),
                ),
                migrations.CreateModel(
                    name='Charge',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('stripe_charge_id', models.CharField(max_length=255, unique=True)),
                        ('amount_cents', models.BigIntegerField()),
                        ('amount_refunded_cents', models.BigIntegerField(default=0)),
                        ('currency', models.CharField(max_length=3)),
                        ('status', models.CharField(max_length=20)),
                        ('paid', models.BooleanField(default=False)),
                        ('disputed', models.BooleanField(default=False)),
                        ('failure_message', models.CharField(blank=True, max_length=500)),
                        ('charged_at', models.DateTimeField()),
                        ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='charges', to='audiences.customer')),
                    ],
                    options={
                        'db_table': 'trials_charge',
                        'ordering': ['-charged_at'],
                        'indexes': [models.Index(fields=['customer', '-charged_at'], name='charge_customer_recent')],
                    },
                ),
                migrations.AddConstraint(
                    model_name='plan',
                    constraint=models.CheckConstraint(condition=models.Q(('amount_cents__gte', 0)), name='plan_amount_not_negative'),
                ),
                migrations.AddConstraint(
                    model_name='plan',
                    constraint=models.CheckConstraint(condition=models.Q(('interval_count__gte', 1)), name='plan_interval_count_positive'),
                ),
                migrations.AddConstraint(
                    model_name='addon',
                    constraint=models.CheckConstraint(condition=models.Q(('amount_cents__gte', 0)), name='addon_amount_not_negative'),
                ),
                migrations.AddConstraint(
                    model_name='addon',
                    constraint=models.CheckConstraint(condition=models.Q(('interval_count__gte', 1)), name='addon_interval_count_positive'),
                ),
                migrations.AddIndex(
                    model_name='stripecustomer',
                    index=models.Index(condition=models.Q(('customer__isnull', True)), fields=['customer'], name='stripecustomer_unlinked'),
                ),
                migrations.AddConstraint(
                    model_name='subscriptionaddon',
                    constraint=models.UniqueConstraint(fields=('subscription', 'add_on'), name='subscription_addon_once'),
                ),
                migrations.AddIndex(
                    model_name='subscription',
                    index=models.Index(fields=['customer', 'status'], name='subscription_customer_status'),
                ),
                migrations.AddIndex(
                    model_name='subscription',
                    index=models.Index(condition=models.Q(('status', 'trialing')), fields=['trial_end'], name='subscription_trialing_end'),
                ),
                migrations.AddIndex(
                    model_name='subscription',
                    index=models.Index(fields=['status', '-started_at'], name='subscription_status_started'),
                ),
                migrations.AddConstraint(
                    model_name='subscription',
                    constraint=models.CheckConstraint(condition=models.Q(('mrr_cents__gte', 0)), name='subscription_mrr_not_negative'),
                ),
                migrations.AddConstraint(
                    model_name='subscription',
                    constraint=models.CheckConstraint(condition=models.Q(('mrr_amount__gte', 0)), name='subscription_mrr_amount_not_negative'),
                ),
                migrations.AddConstraint(
                    model_name='subscription',
                    constraint=models.CheckConstraint(condition=models.Q(('discount_percent__isnull', True), models.Q(('discount_percent__gte', 0), ('discount_percent__lte', 100)), _connector='OR'), name='subscription_discount_percent_range'),
                ),
                migrations.AddConstraint(
                    model_name='subscription',
                    constraint=models.CheckConstraint(condition=models.Q(('trial_end__isnull', True), ('trial_start__isnull', True), ('trial_end__gte', models.F('trial_start')), _connector='OR'), name='subscription_trial_ends_after_start'),
                ),
            ],
        ),
        migrations.RunPython(forward, backward),
    ]
