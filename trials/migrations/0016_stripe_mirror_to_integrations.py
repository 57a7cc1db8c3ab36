"""State only: the Stripe mirror's models leave the trials app (integrations.0012 took them over with their tables),
and Trial.subscription now points at integrations.Subscription. Nothing changes in the database."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0012_stripe_mirror_from_trials'),
        ('offers', '0006_subscription_from_integrations'),
        ('trials', '0015_message_send_at_local_time'),
    ]

    operations = [
        # The tables stay, now owned by integrations: only the migration state changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='addon',
                    name='product',
                ),
                migrations.RemoveField(
                    model_name='subscriptionaddon',
                    name='add_on',
                ),
                migrations.RemoveField(
                    model_name='subscription',
                    name='add_ons',
                ),
                migrations.DeleteModel(
                    name='BillingSettings',
                ),
                migrations.RemoveField(
                    model_name='charge',
                    name='customer',
                ),
                migrations.DeleteModel(
                    name='Coupon',
                ),
                migrations.DeleteModel(
                    name='CurrencyRate',
                ),
                migrations.DeleteModel(
                    name='Discount',
                ),
                migrations.RemoveField(
                    model_name='invoice',
                    name='customer',
                ),
                migrations.RemoveField(
                    model_name='invoice',
                    name='subscription',
                ),
                migrations.RemoveField(
                    model_name='plan',
                    name='product',
                ),
                migrations.RemoveField(
                    model_name='subscription',
                    name='plan',
                ),
                migrations.RemoveField(
                    model_name='stripecustomer',
                    name='account',
                ),
                migrations.RemoveField(
                    model_name='stripecustomer',
                    name='customer',
                ),
                migrations.RemoveField(
                    model_name='subscription',
                    name='customer',
                ),
                migrations.AlterField(
                    model_name='trial',
                    name='subscription',
                    field=models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='trial', to='integrations.subscription'),
                ),
                migrations.RemoveField(
                    model_name='subscriptionaddon',
                    name='subscription',
                ),
                migrations.DeleteModel(
                    name='AddOn',
                ),
                migrations.DeleteModel(
                    name='Charge',
                ),
                migrations.DeleteModel(
                    name='Invoice',
                ),
                migrations.DeleteModel(
                    name='Product',
                ),
                migrations.DeleteModel(
                    name='Plan',
                ),
                migrations.DeleteModel(
                    name='StripeCustomer',
                ),
                migrations.DeleteModel(
                    name='Subscription',
                ),
                migrations.DeleteModel(
                    name='SubscriptionAddOn',
                ),
            ],
        ),
    ]
