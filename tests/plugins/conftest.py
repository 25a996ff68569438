"""The plugin tests use the fixtures ``archnest.testing`` exports, with the app built
with the test-only hook plugin (exactly what a plugin author would do)."""

from __future__ import annotations

import pytest
from aiohttp import web
from archnest import Settings, create_app

from .hookplugin import HookPlugin


@pytest.fixture
def archnest_settings(archnest_settings: Settings) -> Settings:
    # Only the core and the test plugin: these tests are about the hook contract, not
    # about the built-in sources (which have their own suites).
    archnest_settings.plugins = []
    return archnest_settings


@pytest.fixture
def hook_plugin() -> HookPlugin:
    return HookPlugin()


@pytest.fixture
def archnest_app(archnest_settings: Settings, hook_plugin: HookPlugin) -> web.Application:
    return create_app(archnest_settings, extra_plugins=[hook_plugin])
