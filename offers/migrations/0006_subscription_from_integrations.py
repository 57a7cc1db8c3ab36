"""State only: the subscription a cancellation session or win-back email points at is now integrations.Subscription
(the Stripe mirror moved from trials to integrations.stripe; the table trials_subscription and the foreign keys
stay as they are)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0012_stripe_mirror_from_trials'),
        ('offers', '0005_session_mrr_in_workspace_currency'),
    ]

    operations = [
        # The foreign keys already point at trials_subscription, the table integrations.Subscription keeps.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='cancellationsession',
                    name='subscription',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='cancellation_sessions', to='integrations.subscription'),
                ),
                migrations.AlterField(
                    model_name='winbackemail',
                    name='subscription',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='win_back_email', to='integrations.subscription'),
                ),
            ],
        ),
    ]
