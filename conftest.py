"""Root conftest: pytester for the plugin's self-tests. The v13 plugin itself is registered by its
``pytest11`` entry point only (registering it here too would fail as "already registered")."""

pytest_plugins = ["pytester"]
