"""Moving the test database between migration states, for the tests of data migrations on populated databases."""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(targets: list[tuple[str, str]] | None = None) -> Apps:
    """Migrate the test database to `targets` (the latest state when None) and return the models as they are
    there. A fresh executor each time: the graph must be read again after the previous move."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    nodes = targets if targets is not None else executor.loader.graph.leaf_nodes()
    executor.migrate(nodes)
    return executor.loader.project_state(nodes).apps
