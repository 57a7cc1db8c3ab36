"""Lifecycle messaging: email templates decided and delivered per customer, and in-app prompts. Above the loop
(it reads trials and stages), below plays, offers and measurement."""
