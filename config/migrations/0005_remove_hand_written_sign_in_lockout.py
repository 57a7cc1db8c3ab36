"""The hand-written sign-in lockout gives way to django-axes (its own tables come with its migrations). The
old rows only ever mattered for the 15-minute window, so the table is dropped with them."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('project', '0004_audit_hide_token_keys'),
    ]

    operations = [
        migrations.DeleteModel(
            name='SignInFailure',
        ),
    ]
