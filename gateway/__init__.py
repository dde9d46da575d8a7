"""The Envoy gateway: its configuration, rendered from Settings, and its process."""

from gateway.envoy_config import render_envoy_config, write_envoy_config
from gateway.envoy_process import EnvoyProcess

__all__ = ["EnvoyProcess", "render_envoy_config", "write_envoy_config"]
